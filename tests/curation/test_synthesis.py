"""Magpie synthesis into a project: a job on the shared lifecycle, prompts through the import path."""

from __future__ import annotations

import pytest

from curation.models import GenerationJob, JobStatus, Prompt, SynthesisJob, Teacher
from curation.services.synthesis import synthesis_job_create, synthesis_job_run
from tests.tiny import save_tiny_model

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("magpie"), layers=2)


@pytest.fixture
def teacher(project, tiny_chat):
    return Teacher.objects.create(project=project, name="tiny", kind=Teacher.Kind.LOCAL, model_path=str(tiny_chat))


def test_synthesis_adds_new_unique_prompts_and_queues_their_answers(project, teacher, curator):
    Prompt.objects.create(project=project, messages=[{"role": "user", "content": "old"}], text="old",
                          content_hash="0" * 64)
    job = synthesis_job_create(project=project, teacher=teacher, count=5, created_by=curator, max_new_tokens=8,
                               keep_flagged=True, enqueue=False)
    assert synthesis_job_run(job_id=job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    added = Prompt.objects.filter(project=project, metadata__source="magpie")
    assert job.created == added.count() == len(job.prompt_ids) == 5
    assert sorted(job.prompt_ids) == sorted(added.values_list("pk", flat=True))
    assert len(set(added.values_list("text", flat=True))) == 5
    assert all(p.metadata["synthesis_job"] == job.pk for p in added)
    answers = GenerationJob.objects.get(pk=job.generation_job_id)
    assert answers.temperature == 0.0 and answers.selection == {"mode": "ids", "ids": job.prompt_ids}
    assert synthesis_job_run(job_id=job.pk) is None  # a second delivery does nothing


def test_api_door_and_validation(client, project, teacher, curator, annotator):
    client.force_login(curator)
    response = client.post("/api/v1/synthesis-jobs/", {"project": project.slug, "teacher": "tiny", "count": 3},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["queue"]["queue"] == "generation" and SynthesisJob.objects.count() == 1
    bad = client.post("/api/v1/synthesis-jobs/", {"project": project.slug, "teacher": "tiny", "count": 3,
                                                  "max_new_tokens": 1}, content_type="application/json")
    assert bad.status_code == 400
    client.force_login(annotator)
    assert client.post("/api/v1/synthesis-jobs/", {"project": project.slug, "teacher": "tiny", "count": 3},
                       content_type="application/json").status_code == 403


def test_the_generation_page_queues_synthesis(client, project, teacher, curator, annotator):
    from django.urls import reverse

    client.force_login(curator)
    page = client.get(reverse("curation:generation_panel", args=[project.slug]))
    assert b"Synthesize prompts" in page.content
    url = reverse("curation:synthesis_start", args=[project.slug])
    done = client.post(url, {"teacher": teacher.pk, "count": 7, "temperature": 0.9, "max_new_tokens": 32, "seed": 1,
                             "answer": "on"}, HTTP_HX_REQUEST="true")
    assert done.status_code == 200 and b"0 / 7" in done.content
    job = SynthesisJob.objects.get()
    assert (job.count, job.temperature, job.answer, job.status) == (7, 0.9, True, JobStatus.QUEUED)
    assert client.post(url, {"teacher": teacher.pk, "count": 0}, HTTP_HX_REQUEST="true").status_code == 422
    client.force_login(annotator)
    assert client.post(url, {"teacher": teacher.pk, "count": 3}).status_code == 403
