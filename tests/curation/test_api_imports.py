"""Imports over the API: a multipart upload creates a job, the worker runs it."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from curation.models import ImportJob, JobStatus, Prompt
from tests.conftest import wait_for

GOOD = b'{"prompt": "What is 2 + 2?", "completions": ["4", "5"]}\n{"prompt": "Capital of Italy?", "completion": "Rome"}\n'


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def upload(name: str = "out.jsonl", content: bytes = GOOD) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def queued(monkeypatch):
    """Catch the task instead of sending it: these tests run the job in-process."""
    from curation import tasks

    sent = []
    monkeypatch.setattr(tasks.import_job_run, "delay", sent.append)
    return sent


@pytest.mark.django_db
def test_upload_creates_a_queued_job_and_detail_shows_the_outcome(project, curator, media, queued,
                                                                 django_capture_on_commit_callbacks):
    from curation.services.imports import import_job_run

    api = client_for(curator)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/imports/", {"project": project.slug, "file": upload(), "format": "auto"},
                            format="multipart")
    assert response.status_code == 201, response.data
    assert response.data["status"] == "queued" and queued == [response.data["id"]]
    import_job_run(response.data["id"])
    detail = api.get(f"/api/v1/imports/{response.data['id']}/").data
    assert (detail["status"], detail["imported_count"], detail["detected_format"]) == ("succeeded", 2, "jsonl")
    assert [j["id"] for j in api.get("/api/v1/imports/", {"project": project.slug}).data["results"]] == [detail["id"]]


@pytest.mark.django_db
def test_skip_invalid_rejects_download(project, curator, annotator, media, queued, settings, tmp_path):
    from curation.services.imports import import_job_run

    settings.DATA_DIR = tmp_path / "data"
    api = client_for(curator)
    data = {"project": project.slug, "file": upload(content=GOOD + b"{broken\n"), "skip_invalid": "true"}
    job_id = api.post("/api/v1/imports/", data, format="multipart").data["id"]
    import_job_run(job_id)
    detail = api.get(f"/api/v1/imports/{job_id}/").data
    assert (detail["invalid_count"], detail["has_rejects"], detail["errors"][0]["line"]) == (1, True, 3)
    rejects = api.get(f"/api/v1/imports/{job_id}/rejects/")
    assert rejects.status_code == 200
    assert json.loads(b"".join(rejects.streaming_content))["line"] == 3
    assert client_for(annotator).get(f"/api/v1/imports/{job_id}/rejects/").status_code == 403


@pytest.mark.django_db
def test_permissions_and_validation(project, curator, annotator, outsider, media, queued):
    data = lambda **extra: {"project": project.slug, "file": upload(), **extra}  # noqa: E731
    assert client_for(annotator).post("/api/v1/imports/", data(), format="multipart").status_code == 403
    assert client_for(outsider).post("/api/v1/imports/", data(), format="multipart").status_code == 404
    assert client_for(curator).post("/api/v1/imports/", data(format="xml"), format="multipart").status_code == 400
    response = client_for(curator).post("/api/v1/imports/", data(format="openai-batch"), format="multipart")
    assert response.status_code == 400 and "batch_input_file" in response.data
    assert not ImportJob.objects.exists() and queued == []
    job = ImportJob.objects.create(project=project)
    assert client_for(outsider).get(f"/api/v1/imports/{job.pk}/").status_code == 404
    assert client_for(annotator).get(f"/api/v1/imports/{job.pk}/").status_code == 200


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_uploaded_file_is_imported_by_the_worker(project, curator, celery_worker):
    """Through the real broker to a real worker process, which writes the job's outcome to the database."""
    response = client_for(curator).post(
        "/api/v1/imports/", {"project": project.slug, "file": upload("worker.jsonl")}, format="multipart"
    )
    assert response.status_code == 201, response.data
    job_id = response.data["id"]
    job = wait_for(
        lambda: ImportJob.objects.filter(pk=job_id, status__in=JobStatus.finished()).first(),
        timeout=60, message=f"import job {job_id} to finish (worker log: {celery_worker.log_path})",
    )
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.imported_count, job.detected_format) == (2, "jsonl")
    assert Prompt.objects.filter(project=project).count() == 2


def test_a_queued_import_says_how_long_it_waited_and_whether_a_worker_listens(client, project, curator, tmp_path,
                                                                              settings):
    from datetime import timedelta

    from django.utils import timezone

    from curation.models import ImportJob, WorkerBeat

    job = ImportJob.objects.create(project=project, file="x.jsonl", queued_at=timezone.now() - timedelta(minutes=2))
    client.force_login(curator)
    state = client.get(f"/api/v1/imports/{job.pk}/").json()["queue"]
    assert state["queue"] == "default" and state["waited_seconds"] >= 120 and state["worker_listening"] is False
    page = client.get(f"/p/{project.slug}/imports/{job.pk}/").content.decode()
    assert "no worker is listening" in page
    WorkerBeat.objects.create(name="celery@box", queues=["default", "generation"])
    assert client.get(f"/api/v1/imports/{job.pk}/").json()["queue"]["workers"] == ["celery@box"]
    assert "1 worker listening" in client.get(f"/p/{project.slug}/imports/{job.pk}/").content.decode()
