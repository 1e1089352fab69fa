"""Browse: search, filters, keyset pages; bulk actions on the filter with a counted confirmation."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import BulkActionJob, Flag, Prompt, Review, Tag
from curation.services.bulk import bulk_action_job_run
from tests.curation.review_helpers import make_item, make_items, post_review
from tests.factories import CompletionFactory, PromptFactory

pytestmark = pytest.mark.django_db


def browse(client, project, **params):
    return client.get(reverse("curation:browse", args=[project.slug]), params)


def test_search_matches_prompt_and_completion_text(client, project, annotator):
    by_prompt = PromptFactory(project=project, text="Explain photosynthesis")
    by_completion = make_item(project)
    CompletionFactory(prompt=by_completion, text="Chlorophyll and PHOTOSYNTHESIS in leaves")
    make_item(project)
    client.force_login(annotator)
    body = browse(client, project, q="photosynthesis").content.decode()
    assert f'/items/{by_prompt.pk}/"' in body and f'/items/{by_completion.pk}/"' in body
    assert body.count('class="row-link"') == 2


def test_filters(client, project, annotator):
    flagged, edited, truncated, plain = make_items(project, 4)
    Flag.objects.create(prompt=flagged, kind="eval-regression", detail="run 1")
    CompletionFactory(prompt=truncated, finish_reason="length", source="big-teacher", text="x" * 500)
    client.force_login(annotator)
    post_review(client, edited, edited_text="better")
    rows = lambda **f: browse(client, project, **f).content.decode().count('class="row-link"')  # noqa: E731
    assert rows(flag="eval-regression") == 1
    assert rows(has_edit="on") == 1
    assert rows(source="big-teacher") == 1
    assert rows(min_length=400) == 1
    assert rows(status="approved") == 1
    assert rows(annotator=annotator.pk) == 1
    assert rows() == 4
    page = browse(client, project).content.decode()
    assert "⚠ eval regression" in page  # offered first in the flag menu


def test_keyset_pages_append_the_next_rows_without_counting(client, project, annotator):
    prompts = [PromptFactory(project=project) for _ in range(55)]
    client.force_login(annotator)
    with CaptureQueriesContext(connection) as queries:
        body = browse(client, project).content.decode()
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper() and "curation_prompt" in q["sql"]]
    assert body.count('class="row-link"') == 50 and 'id="more"' in body
    cursor = min(p.pk for p in prompts[-50:])
    rest = client.get(reverse("curation:browse", args=[project.slug]), {"cursor": cursor}, HTTP_HX_REQUEST="true")
    assert rest.content.decode().count('class="row-link"') == 5 and b"<table" not in rest.content


def bulk(client, project, **data):
    return client.post(reverse("curation:bulk_action", args=[project.slug]), data, HTTP_HX_REQUEST="true")


def run_bulk_job(client, project):
    """What the worker does with the queued job (here, in the test's own transaction), then the progress fragment."""
    job = BulkActionJob.objects.latest("created_at")
    assert bulk_action_job_run(job_id=job.pk) == "succeeded"
    return client.get(reverse("curation:bulk_job", args=[project.slug, job.pk]), HTTP_HX_REQUEST="true")


def test_bulk_action_confirms_the_count_then_applies(client, project, curator):
    truncated = make_items(project, 3)
    make_items(project, 2)
    for item in truncated:
        Flag.objects.create(prompt=item, kind="truncated")
    client.force_login(curator)
    preview = bulk(client, project, action="reject", flag="truncated")
    assert b"<strong>3</strong> items" in preview.content and b"flag=truncated" in preview.content
    assert not Review.objects.exists()
    queued = bulk(client, project, action="reject", flag="truncated", confirm="on", expected=3)
    assert b"0 of 3 items done" in queued.content and b"every 1s" in queued.content  # polls while queued
    assert not Prompt.objects.filter(status="rejected").exists()  # the worker does it, not the request
    done = run_bulk_job(client, project)
    assert b"Done: reject on 3 items" in done.content and b"every 1s" not in done.content
    assert Prompt.objects.filter(status="rejected").count() == 3


def test_bulk_refuses_when_the_count_changed(client, project, curator):
    make_items(project, 2)
    client.force_login(curator)
    response = bulk(client, project, action="tag", tag_name="x", confirm="on", expected=5)
    assert b"matches a different number" in response.content and not Tag.objects.exists()
    bulk(client, project, action="tag", tag_name="x", confirm="on", expected=2)
    run_bulk_job(client, project)
    assert Tag.objects.filter(name="x").count() == 2


def test_bulk_requeue(client, project, curator, annotator):
    item = make_item(project)
    client.force_login(annotator)
    post_review(client, item)
    client.force_login(curator)
    bulk(client, project, action="requeue", status="approved", confirm="on", expected=1)
    run_bulk_job(client, project)
    item.refresh_from_db()
    assert item.status == "pending" and Review.objects.get().superseded


def test_annotators_may_browse_but_not_bulk(client, project, annotator):
    make_items(project, 1)
    client.force_login(annotator)
    page = browse(client, project)
    assert page.status_code == 200 and b"On every item of this filter" not in page.content
    assert bulk(client, project, action="approve", confirm="on", expected=1).status_code == 403
    assert not Review.objects.exists()


def test_outsiders_get_404(client, project, outsider):
    client.force_login(outsider)
    assert browse(client, project).status_code == 404
    assert bulk(client, project, action="approve").status_code == 404


def test_bulk_job_walks_the_filter_in_chunks_and_resumes_after_the_last_one(client, project, curator, monkeypatch):
    from curation.services import bulk as bulk_services

    items = make_items(project, 7)
    monkeypatch.setattr(bulk_services, "CHUNK", 3)
    client.force_login(curator)
    bulk(client, project, action="tag", tag_name="seen", confirm="on", expected=7)
    job = BulkActionJob.objects.get()
    # An earlier attempt did the first chunk, then its worker died: the retry starts after it.
    Tag.objects.bulk_create([Tag(prompt=p, name="seen") for p in items[:3]])
    BulkActionJob.objects.filter(pk=job.pk).update(last_id=items[2].pk, done=3)
    assert bulk_action_job_run(job_id=job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.done, job.total, job.last_id) == (7, 7, items[-1].pk)
    assert Tag.objects.filter(name="seen").count() == 7


def test_a_cancelled_bulk_job_stops_after_its_chunk(client, project, curator, monkeypatch):
    from curation.jobs import services as jobs
    from curation.services import bulk as bulk_services

    make_items(project, 5)
    monkeypatch.setattr(bulk_services, "CHUNK", 2)
    client.force_login(curator)
    bulk(client, project, action="tag", tag_name="c", confirm="on", expected=5)
    job = BulkActionJob.objects.get()
    real_beat = jobs.job_beat

    def beat_then_cancel(model, pk, **progress):
        model.objects.filter(pk=pk).update(cancel_requested=True)
        return real_beat(model, pk, **progress)

    monkeypatch.setattr(jobs, "job_beat", beat_then_cancel)
    assert bulk_action_job_run(job_id=job.pk) == "cancelled"
    job.refresh_from_db()
    assert (job.status, job.done) == ("cancelled", 2) and Tag.objects.filter(name="c").count() == 2
