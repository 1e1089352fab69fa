"""Report pages, their permissions, and the per-example view's send-back (no worker)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import Flag, JobStatus, ServerResource
from evaluation.models import EvaluationRun
from tests.evaluation.helpers import finished_run, make_heldout_version, sft_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(project):
    return finished_run(project, *make_heldout_version(project, sft_records()))


def test_outsiders_get_404_everywhere(client, run, outsider):
    client.force_login(outsider)
    urls = [reverse("evaluation:run_list", args=[run.project.slug]), reverse("evaluation:run_detail", args=[run.pk]),
            reverse("evaluation:run_examples", args=[run.pk])]
    assert [client.get(url).status_code for url in urls] == [404, 404, 404]
    assert client.post(reverse("evaluation:run_send_back", args=[run.pk]), {"doc_ids": [5]}).status_code == 404


def test_annotators_read_but_do_not_act(client, run, annotator):
    client.force_login(annotator)
    page = client.get(reverse("evaluation:run_detail", args=[run.pk]))
    assert page.status_code == 200 and b"Send selected back" not in page.content
    assert client.get(reverse("evaluation:run_list", args=[run.project.slug])).context["form"] is None
    assert client.post(reverse("evaluation:run_send_back", args=[run.pk]), {"doc_ids": [5]}).status_code == 403
    assert client.post(reverse("evaluation:run_cancel", args=[run.pk])).status_code == 403
    assert client.post(reverse("evaluation:run_create", args=[run.project.slug]), {}).status_code == 403
    assert not Flag.objects.exists()


def test_report_shows_scores_retention_ratios_and_chart(client, run, curator):
    client.force_login(curator)
    html = client.get(reverse("evaluation:run_detail", args=[run.pk])).content.decode()
    assert "heldout_gen" in html and "word_perplexity" in html and "<svg" in html
    assert "50%" in html  # exact_match retention, and the inverted perplexity retention
    assert "0.40×" in html and "2.50×" in html  # size and speed ratios against the teacher
    assert reverse("evaluation:run_examples", args=[run.pk]) in html


def test_progress_fragment_polls_while_active_and_refreshes_when_done(client, project, curator):
    running = EvaluationRun.objects.create(project=project, status=JobStatus.RUNNING, stage="teacher: generate_until 2/6",
                                           progress=0.25)
    client.force_login(curator)
    url = reverse("evaluation:run_detail", args=[running.pk])
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert b'hx-trigger="every 2s"' in fragment.content and b"<h1>" not in fragment.content
    assert b"generate_until 2/6" in fragment.content and "HX-Refresh" not in fragment
    EvaluationRun.objects.filter(pk=running.pk).update(status=JobStatus.SUCCEEDED)
    assert client.get(url, headers={"HX-Request": "true"})["HX-Refresh"] == "true"


def test_examples_view_lists_regressions_sorted_by_gap_and_sends_them_back(client, run, curator):
    client.force_login(curator)
    url = reverse("evaluation:run_examples", args=[run.pk])
    page = client.get(url)
    assert [item.doc_id for item in page.context["items"]] == [5, 3, 4]
    html = page.content.decode()
    assert html.index('id="item-5"') < html.index('id="item-3"') < html.index('id="item-4"')
    assert "student says 5" in html and "answer 5" in html
    by_item = client.get(url, {"sort": "item"}, headers={"HX-Request": "true"})
    fragment = by_item.content.decode()
    assert "<h1>" not in fragment and fragment.index('id="item-3"') < fragment.index('id="item-5"')
    response = client.post(reverse("evaluation:run_send_back", args=[run.pk]),
                           {"doc_ids": [5, 4], "student": "student", "sort": "item", "metric": "rougeL"})
    assert response.status_code == 302 and "sort=item" in response["Location"]
    assert Flag.objects.filter(kind="eval-regression").count() == 2
    after = client.get(response["Location"]).content.decode()
    assert after.count("sent back") == 2 and "2 item(s) went back to the review queue" in after


def test_text_from_models_is_escaped(client, run, curator):
    run.samples.filter(model_label="student", doc_id=5, task="heldout_gen").update(response="<script>alert(1)</script>")
    client.force_login(curator)
    html = client.get(reverse("evaluation:run_examples", args=[run.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_run_list_form_creates_a_run(client, project, curator, tmp_path, django_capture_on_commit_callbacks, monkeypatch):
    version, _ = make_heldout_version(project, sft_records())
    (tmp_path / "m").mkdir()
    ServerResource.objects.create(kind=ServerResource.Kind.MODEL, name="m", path=str(tmp_path / "m"))
    monkeypatch.setattr("evaluation.tasks.evaluation_run.delay", lambda pk: None)
    client.force_login(curator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("evaluation:run_create", args=[project.slug]), {
            "dataset_version": version.pk, "other_models": f"teacher=hf:{tmp_path / 'm'}\nsmall=hf:{tmp_path / 'm'}",
            "tasks": "heldout", "batch_size": 4, "max_gen_toks": 64, "apply_chat_template": "on", "limit": "2",
        })
    run = EvaluationRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("evaluation:run_detail", args=[run.pk])
    assert [(m["label"], m["role"]) for m in run.models_spec] == [("teacher", "teacher"), ("small", "student")]
    assert run.options["limit"] == 2 and run.created_by == curator
    bad = client.post(reverse("evaluation:run_create", args=[project.slug]), {
        "other_models": "nonsense", "tasks": "heldout", "batch_size": 4, "max_gen_toks": 64})
    assert bad.status_code == 400 and b"Cannot read" in bad.content


def test_metrics_the_teacher_lacks_keep_their_columns(client, run, curator):
    """An API teacher has no perplexity: its cell and the retention read "—", the columns stay aligned."""
    del run.results["teacher"]["metrics"]["heldout_ppl"]
    run.save(update_fields=["results"])
    client.force_login(curator)
    html = client.get(reverse("evaluation:run_detail", args=[run.pk])).content.decode()
    row = html[html.index("word_perplexity"):]
    row = row[: row.index("</tr>")]
    assert row.count("<td") == 3 and row.count("—") == 2  # after the metric: teacher —, student value, retention —


def test_progress_shows_time_left_and_the_newest_log(client, project, curator, tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    (tmp_path / "models" / "00_teacher").mkdir(parents=True)
    (tmp_path / "models" / "00_teacher" / "log.txt").write_text("loading\nold line\n")
    (tmp_path / "models" / "01_student").mkdir()
    (tmp_path / "models" / "01_student" / "log.txt").write_text("Running generate_until requests\nstep 1\r 50%|█████     |\r100%|██████████|\n")
    import os
    os.utime(tmp_path / "models" / "00_teacher" / "log.txt", (1, 1))  # the student's log is the newest
    running = EvaluationRun.objects.create(project=project, status=JobStatus.RUNNING, progress=0.25,
                                           started_at=timezone.now() - timedelta(seconds=60), artifact_dir=str(tmp_path))
    client.force_login(curator)
    html = client.get(reverse("evaluation:run_detail", args=[running.pk]), headers={"HX-Request": "true"}).content.decode()
    assert "25% done" in html and "about 3.0 min left" in html  # 60 s for a quarter: 180 s to go
    assert "01_student/log.txt" in html and "100%|██████████|" in html and " 50%|" not in html and "old line" not in html
