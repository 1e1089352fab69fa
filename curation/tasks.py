"""Celery tasks of curation: ids in, one service call. Queued with transaction.on_commit."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="curation.tasks.generation_run")
def generation_run(job_id: int) -> None:
    """Routed to the ``generation`` queue by name (settings.CELERY_TASK_ROUTES)."""
    from curation.services.generation import generation_job_run

    generation_job_run(job_id=job_id)


@shared_task(name="curation.tasks.import_job_run")
def import_job_run(job_id: int) -> None:
    from curation.services.imports import import_job_run as run

    run(job_id)
