"""The admin: every curation model has a working list and page, text is escaped, frozen data is read-only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from curation import models
from curation.models import DatasetVersion, ImportJob, Prompt, Teacher
from tests.curation.test_datasets import curate
from tests.factories import PromptFactory

pytestmark = pytest.mark.django_db

CURATION_MODELS = [m for m in vars(models).values() if isinstance(m, type) and issubclass(m, models.models.Model)
                   and m._meta.app_label == "curation" and not m._meta.abstract]


@pytest.fixture
def populated(project, annotator):
    prompt, completions, review = curate(project, ["<b>bold</b> answer", "other"], ranking=[0, 1], annotator=annotator,
                                         prompt_text="<script>alert(1)</script>")
    models.Flag.objects.create(prompt=prompt, completion=completions[0], kind="truncated")
    models.Tag.objects.create(prompt=prompt, name="maths")
    models.Assignment.objects.create(prompt=PromptFactory(project=project), annotator=annotator)
    models.CompletionRevision.objects.create(completion=completions[0], review=review, author=annotator,
                                             text_before="a", text_after="b")
    import_job = models.ImportJob.objects.create(project=project, original_name="x.jsonl",
                                                 errors=[{"line": 2, "reason": "<i>bad</i>"}])
    models.QualityFlagJob.objects.create(import_job=import_job, total=1)
    models.PendingFlag.objects.create(import_job=import_job, prompt_ids=[prompt.pk], size=1)
    teacher = Teacher.objects.create(name="smol", kind="local", model_path="/models/smol")
    models.GenerationJob.objects.create(project=project, teacher=teacher)
    models.BulkActionJob.objects.create(project=project, action="tag", tag_name="<b>t</b>", filters={"q": "x"}, total=3)
    models.SynthesisJob.objects.create(project=project, teacher=teacher, count=10)
    models.SimilarityKey.objects.create(project=project, kind="p", key=12345, prompt=prompt)
    models.WorkerBeat.objects.create(name="celery@<b>host</b>", queues=["default"])
    models.ServerResource.objects.create(kind="model", name="smol", path="/models/smol")
    from curation.services.datasets import dataset_version_freeze

    dataset_version_freeze(project=project, heldout_fraction=0)
    return prompt


@pytest.mark.parametrize("model", CURATION_MODELS, ids=lambda m: m.__name__)
def test_every_model_has_a_changelist_and_a_page(client, admin_user, populated, model):
    assert admin.site.is_registered(model), f"{model.__name__} is missing from the admin"
    client.force_login(admin_user)
    opts = model._meta
    changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert changelist.status_code == 200
    obj = model.objects.first()
    assert obj is not None
    page = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    assert page.status_code == 200


def test_search_and_filters_answer(client, admin_user, populated):
    client.force_login(admin_user)
    url = reverse("admin:curation_prompt_changelist")
    assert client.get(url, {"q": str(populated.id)}).status_code == 200
    assert client.get(url, {"q": "alert", "status__exact": "approved"}).status_code == 200
    assert client.get(reverse("admin:curation_completion_changelist"), {"finish_reason__exact": "length"}).status_code == 200


def test_user_text_is_escaped(client, admin_user, populated):
    client.force_login(admin_user)
    listing = client.get(reverse("admin:curation_prompt_changelist")).content.decode()
    assert "<script>alert(1)</script>" not in listing and "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    page = client.get(reverse("admin:curation_prompt_change", args=[populated.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page and "<b>bold</b>" not in page
    job = ImportJob.objects.get()
    errors = client.get(reverse("admin:curation_importjob_change", args=[job.pk])).content.decode()
    assert "<i>bad</i>" not in errors and "&lt;i&gt;bad&lt;/i&gt;" in errors


def test_dataset_versions_and_rows_are_read_only(client, admin_user, populated):
    client.force_login(admin_user)
    version = DatasetVersion.objects.get()
    row = version.rows.get()
    assert client.get(reverse("admin:curation_datasetversion_add")).status_code == 403
    response = client.post(reverse("admin:curation_datasetversion_change", args=[version.pk]), {"note": "changed"})
    assert response.status_code == 403
    assert client.post(reverse("admin:curation_datasetrow_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    version.refresh_from_db()
    assert version.note == "" and version.rows.count() == 1


def test_project_action_freezes_through_the_service(client, admin_user, project):
    curate(project, ["answer"])
    client.force_login(admin_user)
    response = client.post(reverse("admin:curation_project_changelist"),
                           {"action": "freeze_dataset", "_selected_action": [project.pk]}, follow=True)
    assert response.status_code == 200
    assert DatasetVersion.objects.get(project=project).row_count == 1
    response = client.post(reverse("admin:curation_project_changelist"),
                           {"action": "freeze_dataset", "_selected_action": [project.pk]}, follow=True)
    assert DatasetVersion.objects.filter(project=project).count() == 2


def test_empty_freeze_action_shows_the_reason(client, admin_user, project):
    client.force_login(admin_user)
    response = client.post(reverse("admin:curation_project_changelist"),
                           {"action": "freeze_dataset", "_selected_action": [project.pk]}, follow=True)
    assert "Nothing to freeze" in response.content.decode()


def test_big_lists_skip_the_full_count(admin_user):
    for name in ("Prompt", "Completion", "Review", "DatasetRow"):
        model_admin = admin.site._registry[getattr(models, name)]
        assert model_admin.show_full_result_count is False
    assert admin.site._registry[Prompt].ordering == ["-id"]


def test_a_review_edited_in_the_admin_goes_through_the_review_service(client, admin_user, project, annotator):
    from curation.models import CompletionRevision, Review

    prompt, completions, review = curate(project, ["first answer", "second answer"], annotator=annotator)
    before = Review.objects.get(pk=review.pk)
    client.force_login(admin_user)
    url = reverse("admin:curation_review_change", args=[review.pk])
    form = {"decision": "approve", "chosen": completions[1].pk, "ranking": "[]", "edited_text": "fixed by an operator",
            "comment": ""}
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    review.refresh_from_db()
    assert review.version == before.version + 1 and review.final_text == "fixed by an operator"
    revision = CompletionRevision.objects.filter(review=review).latest("id")
    assert revision.author == admin_user and revision.text_after == "fixed by an operator"
    prompt.refresh_from_db()
    assert prompt.status == Prompt.Status.APPROVED and prompt.review_count == 1
    # What the review page refuses, the admin refuses too.
    refused = client.post(url, {**form, "chosen": "", "edited_text": "an edit of nothing"})
    assert refused.status_code == 200 and "Pick the best candidate" in refused.content.decode()
    assert client.get(reverse("admin:curation_review_add")).status_code == 403


def test_teacher_admin_checks_the_key_is_a_variable_name(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("admin:curation_teacher_add"), {
        "name": "api", "kind": "openai-compatible", "engine": "transformers", "base_url": "http://vllm:8000/v1",
        "model_name": "m",
        "api_key_env": "sk-live-1234 secret", "default_params": "{}"})
    assert response.status_code == 200 and "never the key" in response.content.decode()
    assert not Teacher.objects.exists()
