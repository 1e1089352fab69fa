"""The generation panel, its htmx fragments and the API: who may see and start what."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django.urls import reverse

from curation.models import GenerationJob, JobStatus, Teacher
from curation.services import generation as svc
from tests.factories import MembershipFactory, ProjectFactory, PromptFactory
from curation.selectors.access import SERVER_SHELL

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def teacher(project):
    return svc.teacher_register(actor=SERVER_SHELL, name="tiny", kind=Teacher.Kind.LOCAL, model_path="models/tiny", project=project)


@pytest.fixture
def job(project, teacher):
    PromptFactory.create_batch(3, project=project)
    return svc.generation_job_create(project=project, teacher=teacher, n=1, enqueue=False)


def url(name, project, *args):
    return reverse(f"curation:{name}", args=[project.slug, *args])


def test_dashboard_loads_the_panel_which_shows_the_form_to_curators(client, project, curator, annotator, teacher):
    client.force_login(curator)
    dashboard = client.get(reverse("curation:project_dashboard", args=[project.slug]))
    assert url("generation_panel", project).encode() in dashboard.content
    panel = client.get(url("generation_panel", project), **HTMX)
    assert panel.status_code == 200
    assert b'id="generation-panel"' in panel.content and b"<html" not in panel.content
    assert b">tiny</option>" in panel.content
    client.force_login(annotator)
    assert b"Generate</button>" not in client.get(url("generation_panel", project)).content


def test_curator_starts_a_job_and_sees_its_progress_row(client, project, curator, teacher):
    PromptFactory.create_batch(2, project=project)
    client.force_login(curator)
    form = {"teacher": teacher.pk, "mode": "pending", "n": 2, "temperature": 0.5, "top_p": 0.9,
            "max_new_tokens": 32, "seed": 1, "system_prompt": ""}
    response = client.post(url("generation_start", project), form, **HTMX)
    assert response.status_code == 200
    job = GenerationJob.objects.get(project=project)
    assert (job.n, job.max_new_tokens, job.total, job.created_by) == (2, 32, 2, curator)
    row = client.get(url("generation_job", project, job.pk), **HTMX)
    assert b'hx-trigger="every 2s"' in row.content and b"0 / 2 prompts" in row.content
    # A second job while this one is queued is refused with the reason.
    again = client.post(url("generation_start", project), form, **HTMX)
    assert again.status_code == 422 and b"still queued" in again.content


def test_a_finished_row_stops_polling(client, project, curator, job):
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, done=3)
    client.force_login(curator)
    row = client.get(url("generation_job", project, job.pk), **HTMX)
    assert b"hx-trigger" not in row.content and b"3 / 3 prompts" in row.content


def test_cancel_and_resume_from_the_page(client, project, curator, job):
    client.force_login(curator)
    cancelled = client.post(url("generation_job_cancel", project, job.pk), **HTMX)
    assert cancelled.status_code == 200 and b"Resume</button>" in cancelled.content
    assert client.post(url("generation_job_cancel", project, job.pk), **HTMX).status_code == 422
    resumed = client.post(url("generation_job_resume", project, job.pk), **HTMX)
    assert resumed.status_code == 200 and b"Cancel</button>" in resumed.content


def test_outsiders_get_404_and_annotators_403(client, project, annotator, outsider, job, teacher):
    client.force_login(outsider)
    assert client.get(url("generation_panel", project)).status_code == 404
    assert client.get(url("generation_job", project, job.pk)).status_code == 404
    assert client.post(url("generation_job_cancel", project, job.pk)).status_code == 404
    client.force_login(annotator)
    assert client.get(url("generation_job", project, job.pk)).status_code == 200
    assert client.post(url("generation_job_cancel", project, job.pk)).status_code == 403
    assert client.post(url("generation_start", project), {"teacher": teacher.pk}).status_code == 403
    # A job id under another project's URL is not found, even for a member of both.
    other = MembershipFactory(user=annotator).project
    assert client.get(url("generation_job", other, job.pk)).status_code == 404


def test_api_create_list_detail_cancel(client, project, curator, teacher):
    PromptFactory.create_batch(4, project=project)
    client.force_login(curator)
    created = client.post("/api/v1/generation-jobs/", {"project": project.slug, "teacher": "tiny", "n": 2,
                          "max_new_tokens": 64, "selection": {"mode": "all"}}, content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["status"], body["total"], body["teacher"], body["project"]) == ("queued", 4, "tiny", project.slug)
    listed = client.get("/api/v1/generation-jobs/", {"project": project.slug}).json()
    assert [j["id"] for j in listed["results"]] == [body["id"]]
    assert client.get(f"/api/v1/generation-jobs/{body['id']}/").json()["max_new_tokens"] == 64
    cancelled = client.post(f"/api/v1/generation-jobs/{body['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/generation-jobs/{body['id']}/cancel/").status_code == 400
    assert client.post(f"/api/v1/generation-jobs/{body['id']}/resume/").json()["status"] == "queued"


def test_api_refuses_bad_input_and_hides_other_projects(client, project, curator, annotator, outsider, job):
    client.force_login(curator)
    bad = client.post("/api/v1/generation-jobs/", {"project": project.slug, "teacher": "tiny", "top_p": 0},
                      content_type="application/json")
    assert bad.status_code == 400 and "top_p" in str(bad.json())
    missing = client.post("/api/v1/generation-jobs/", {"project": project.slug, "teacher": "nope"},
                          content_type="application/json")
    assert missing.status_code == 404
    client.force_login(annotator)
    assert client.post("/api/v1/generation-jobs/", {"project": project.slug, "teacher": "tiny"},
                       content_type="application/json").status_code == 403
    assert client.post(f"/api/v1/generation-jobs/{job.pk}/cancel/").status_code == 403
    client.force_login(outsider)
    assert client.get("/api/v1/generation-jobs/").json()["results"] == []
    assert client.get(f"/api/v1/generation-jobs/{job.pk}/").status_code == 404
    assert client.post(f"/api/v1/generation-jobs/{job.pk}/cancel/").status_code == 404
    assert client.post("/api/v1/generation-jobs/", {"project": project.slug, "teacher": "tiny"},
                       content_type="application/json").status_code == 404


def test_api_registers_teachers_for_a_project_and_only_operators_globally(client, project, curator, admin_user,
                                                                         settings):
    settings.TEACHER_ALLOWED_HOSTS = ["vllm:8000"]  # the operator's own inference server
    client.force_login(curator)
    data = {"name": "vllm", "kind": "openai-compatible", "base_url": "http://vllm:8000/v1",
            "model_name": "Qwen2.5-7B-Instruct", "project": project.slug}
    created = client.post("/api/v1/teachers/", data, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["project"] == project.slug
    assert client.post("/api/v1/teachers/", {**data, "project": None},
                       content_type="application/json").status_code == 403
    keyed = client.post("/api/v1/teachers/", {**data, "api_key_env": "DISTILLERY_KEY_VLLM"},
                        content_type="application/json")
    assert keyed.status_code == 403 and b"Only an operator" in keyed.content
    client.force_login(admin_user)
    leaked = client.post("/api/v1/teachers/", {**data, "api_key_env": "sk-123"}, content_type="application/json")
    assert leaked.status_code == 400
    assert client.post("/api/v1/teachers/", {**data, "project": None, "api_key_env": "DISTILLERY_KEY_VLLM"},
                       content_type="application/json").status_code == 201
    other = ProjectFactory()
    svc.teacher_register(actor=SERVER_SHELL, name="secret", kind=Teacher.Kind.LOCAL, model_path="m", project=other)
    client.force_login(curator)
    names = {t["name"] for t in client.get("/api/v1/teachers/").json()["results"]}
    assert names == {"vllm"}


def test_the_form_shows_the_chosen_teachers_defaults(client, project, curator, teacher):
    svc.teacher_register(actor=SERVER_SHELL, name="zz-other", kind=Teacher.Kind.LOCAL, model_path="models/x", project=project,
                         default_params={"top_p": 0.9, "max_new_tokens": 128, "temperature": 0.3})
    other = Teacher.objects.get(name="zz-other")
    client.force_login(curator)
    first = client.get(url("generation_panel", project), **HTMX).content.decode()
    assert 'name="top_p" value="0.95"' in first and 'name="max_new_tokens" value="256"' in first
    picked = client.get(url("generation_panel", project), {"teacher": other.pk}, **HTMX).content.decode()
    assert 'name="top_p" value="0.9"' in picked and 'name="max_new_tokens" value="128"' in picked
    assert 'name="temperature" value="0.3"' in picked and f'value="{other.pk}" selected' in picked


def test_a_job_limited_to_n_prompts_or_to_the_browse_filter(client, project, curator, teacher):
    for i in range(3):
        PromptFactory(project=project, text=f"capital {i}")
    PromptFactory(project=project, text="other")
    client.force_login(curator)
    form = {"teacher": teacher.pk, "mode": "pending", "limit": 2, "n": 1, "temperature": 0.5, "top_p": 0.9,
            "max_new_tokens": 8, "seed": 0, "system_prompt": ""}
    assert client.post(url("generation_start", project), form, **HTMX).status_code == 200
    job = GenerationJob.objects.get(project=project)
    assert job.total == 2 and job.selection["limited_to"] == 2
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    panel = client.get(url("generation_panel", project), {"browse": "q=capital"}, **HTMX).content.decode()
    assert 'value="filter" selected' in panel and "q=capital" in panel
    form.update(mode="filter", limit="", browse="q=capital")
    assert client.post(url("generation_start", project), form, **HTMX).status_code == 200
    assert GenerationJob.objects.latest("id").total == 3


def test_a_stopping_job_has_no_cancel_button(client, project, curator, job):
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, cancel_requested=True,
                                                   heartbeat_at=timezone.now())
    client.force_login(curator)
    row = client.get(url("generation_job", project, job.pk), **HTMX).content.decode()
    assert "stopping after this batch" in row and ">Cancel</button>" not in row
