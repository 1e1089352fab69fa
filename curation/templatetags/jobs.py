"""``{% job_state job %}``: where a background job stands in the queue, the same on every job's page."""

from __future__ import annotations

from django import template

from curation.jobs.registry import kind_of
from curation.jobs.selectors import queue_state

register = template.Library()


@register.inclusion_tag("jobs/state.html")
def job_state(job) -> dict:
    return {"job": job, "queue": queue_state(job), "max_attempts": kind_of(job).policy.max_attempts}
