"""The rough edges a new user hit: each one pinned server-side (the browser tests cover what needs JavaScript)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from curation.models import CompletionRevision, Flag, GenerationJob, JobStatus, Teacher
from curation.services.bulk import prompts_requeue
from evaluation.models import EvaluationRun
from tests.curation.review_helpers import make_item, post_review
from tests.factories import CompletionFactory, PromptFactory

pytestmark = pytest.mark.django_db


def render(template: str, **context) -> str:
    return Template("{% load curation_tags %}" + template).render(Context(context))


@pytest.mark.parametrize(("value", "shown"), [
    (0.0000006819348298638839, "6.82e-7"), (2e-05, "2e-5"), (0.003, "0.003"), (0.0001, "1e-4"), (0, "0"), (None, "–"),
])
def test_learning_rates_are_written_as_people_write_them(value, shown):
    assert render("{{ v|rate }}", v=value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (134_515_008, "134.5M"), (63_713_088, "63.7M"), (1_200_000_000, "1.2B"), (17_552, "17.6k"), (9_999, "9,999"),
    (2_000_000, "2M"),
])
def test_parameter_counts_are_short(value, shown):
    assert render("{{ v|count_short }}", v=value) == shown


def test_relative_times_carry_their_datetime_for_the_live_update():
    moment = timezone.now() - timedelta(seconds=11)
    html = render("{{ t|reltime }}", t=moment)
    assert f'datetime="{moment.isoformat()}"' in html and 'class="rel"' in html and "11\xa0seconds ago" in html


def test_favicon_is_linked_and_served(client, curator):
    client.force_login(curator)
    assert 'rel="icon"' in client.get("/").content.decode()
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


def test_two_truncated_candidates_make_one_badge_not_two(client, project, curator):
    prompt = make_item(project, candidates=2, finish_reason="length")
    for completion in prompt.completions.all():
        Flag.objects.create(prompt=prompt, completion=completion, kind="truncated", detail="stopped at the token limit")
    client.force_login(curator)
    browse = client.get(reverse("curation:browse", args=[project.slug])).content.decode()
    assert "truncated ×2" in browse and "truncated</span><span" not in browse
    item = client.get(reverse("curation:item", args=[project.slug, prompt.pk])).content.decode()
    headers = re.findall(r"<header>.*?</header>", item, re.S)
    assert all(h.count(">truncated<") == 1 for h in headers) and len(headers) == 2


def test_history_names_revisions_by_number_and_candidates_by_letter(client, project, annotator):
    for other in [make_item(project) for _ in range(4)]:  # so that database ids differ from the numbers shown
        for completion in other.completions.all():
            CompletionRevision.objects.create(completion=completion, text_before="a", text_after="b")
    item = make_item(project)
    second = item.completions.order_by("id").last()
    client.force_login(annotator)
    post_review(client, item, chosen=second.pk, edited_text="First try.")
    post_review(client, item, chosen=second.pk, edited_text="Second try.", version=1)
    page = client.get(reverse("curation:item_history", args=[project.slug, item.pk])).content.decode()
    assert "Revision 1 of candidate B" in page and "Revision 2 of candidate B" in page
    assert "candidate B</td>" in page  # the review's chosen candidate
    assert f"candidate {second.pk}" not in page and f"Revision {second.revisions.first().pk} " not in page
    assert "data-confirm=" in page  # Revert asks first (static/js/app.js)
    diff = client.get(reverse("curation:item_diff", args=[project.slug, item.pk]),
                      {"a": f"o{second.pk}", "b": f"r{second.revisions.last().pk}"}).content.decode()
    assert "Original of candidate B" in diff and "Revision 2 (candidate B)" in diff


def test_the_sent_back_banner_goes_once_the_item_is_decided_again(client, project, annotator, curator):
    item = make_item(project)
    client.force_login(annotator)
    post_review(client, item)
    prompts_requeue(project=project, prompt_ids=[item.pk], actor=curator, flag_kind="eval-regression",
                    flag_detail="Evaluation #3: the student scored below the teacher.")
    url = reverse("curation:item", args=[project.slug, item.pk])
    assert "Sent back by evaluation." in client.get(url).content.decode()
    review = item.reviews.get(annotator=annotator)
    post_review(client, item, version=review.version)
    assert "Sent back by evaluation." not in client.get(url).content.decode()
    assert Flag.objects.filter(prompt=item, kind="eval-regression").exists()  # still findable in browse


def test_a_bulk_action_tells_the_page_to_reload_the_table(client, project, curator):
    make_item(project, text="capital of France")
    client.force_login(curator)
    url = reverse("curation:bulk_action", args=[project.slug])
    response = client.post(url, {"q": "capital", "action": "reject", "expected": 1, "confirm": "on"},
                           HTTP_HX_REQUEST="true")
    assert "HX-Trigger" not in response  # queued: nothing changed yet
    # The action runs as a job; its progress fragment, once the job is done, tells the page to reload.
    from curation.models import BulkActionJob
    from curation.services.bulk import bulk_action_job_run

    job = BulkActionJob.objects.get()
    bulk_action_job_run(job_id=job.pk)
    done = client.get(reverse("curation:bulk_job", args=[project.slug, job.pk]), HTTP_HX_REQUEST="true")
    assert done["HX-Trigger"] == "bulk-done"
    page = client.get(reverse("curation:browse", args=[project.slug])).content.decode()
    assert 'hx-trigger="bulk-done from:body"' in page


def test_annotators_see_the_system_prompt_the_export_adds(client, project, annotator):
    project.system_prompt = "Answer in one sentence."
    project.save()
    item = make_item(project)
    client.force_login(annotator)
    page = client.get(reverse("curation:item", args=[project.slug, item.pk])).content.decode()
    assert "Answer in one sentence." in page and "added at export" in page
    own = PromptFactory(project=project, messages=[{"role": "system", "content": "Own."}, {"role": "user", "content": "q"}])
    CompletionFactory(prompt=own)
    assert "added at export" not in client.get(reverse("curation:item", args=[project.slug, own.pk])).content.decode()


def test_every_project_page_has_the_same_tabs_including_disagreements_for_curators(client, project, curator):
    client.force_login(curator)
    pages = [reverse("curation:project_dashboard", args=[project.slug]), reverse("curation:browse", args=[project.slug]),
             reverse("training:run_list") + f"?project={project.slug}",
             reverse("evaluation:run_list", args=[project.slug]), reverse("curation:project_cost", args=[project.slug])]
    tabs = set()
    for url in pages:
        html = client.get(url).content.decode()
        nav = re.search(r'<nav class="subnav".*?</nav>', html, re.S).group(0)
        tabs.add(tuple(re.findall(r">([A-Z][a-z ]+)</a>", nav)))
        assert 'aria-current="page"' in nav
        assert ".subnav {" not in html  # styled once, in app.css, not per page
    assert tabs == {("Dashboard", "Review queue", "Browse", "Disagreements", "Training", "Evaluation", "Cost")}


def test_cost_page_prices_api_tokens_training_time_and_inference(client, project, curator, settings):
    settings.DEVICE_COST_PER_HOUR = 2.0
    api = Teacher.objects.create(project=project, name="api-teacher", kind="openai-compatible", model_name="m",
                                 base_url="http://x/v1", price_per_million_tokens="10.00")
    now = timezone.now()
    GenerationJob.objects.create(project=project, teacher=api, status=JobStatus.SUCCEEDED, generated_tokens=500_000,
                                 started_at=now - timedelta(minutes=5), finished_at=now)
    EvaluationRun.objects.create(
        project=project, status="succeeded", finished_at=now, tasks=["heldout"],
        models_spec=[{"label": "api-teacher", "role": "teacher", "source": {"teacher_id": api.pk}},
                     {"label": "student", "role": "student", "source": {"training_run_id": 1}}],
        measurements={"api-teacher": {"tokens_per_second": 50.0}, "student": {"tokens_per_second": 100.0}},
    )
    client.force_login(curator)
    page = client.get(reverse("curation:project_cost", args=[project.slug])).content.decode()
    assert "500,000 tokens generated" in page and "$5.0000" in page  # 0.5M tokens at $10 per 1M
    # The student: 1M tokens take 2.8 h at 100 tokens/s, at $2/h = $5.56 per 1M; the teacher's API: $10.
    assert "$5.5556" in page and "$10.0000" in page and "2.00×" in page and "1.8×" in page
