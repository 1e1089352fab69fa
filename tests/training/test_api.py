"""/api/v1/training-runs/: create, list, detail, cancel, resume, with 403/404 for the wrong users."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from curation.models import JobStatus
from training.models import TrainingRun
from training.services import training_run_create

pytestmark = pytest.mark.django_db
URL = "/api/v1/training-runs/"


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_curator_creates_a_run_with_hyperparameters(version, local_teacher, curator):
    response = _client(curator).post(URL, {
        "dataset_version": version.pk, "method": "kd", "teacher": "tiny", "keep_layers": 2,
        "hyperparams": {"max_steps": 10, "kd_temperature": 3.0}, "seed": 5,
    }, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["method"] == "kd" and body["teacher"] == "tiny"
    assert body["hyperparams"]["kd_temperature"] == 3.0 and body["hyperparams"]["learning_rate"] == 1e-4
    assert TrainingRun.objects.get().seed == 5


def test_create_answers_400_with_the_service_message(version, local_teacher, curator):
    response = _client(curator).post(
        URL, {"dataset_version": version.pk, "hyperparams": {"warmup_ratio": 1.5}}, format="json"
    )
    assert response.status_code == 400
    assert "warmup_ratio" in str(response.json()["hyperparams"])
    unknown = _client(curator).post(URL, {"dataset_version": version.pk, "teacher": "nope"}, format="json")
    assert unknown.status_code == 404


def test_create_is_refused_to_annotators_and_hidden_from_outsiders(version, local_teacher, annotator, outsider):
    assert _client(annotator).post(URL, {"dataset_version": version.pk}, format="json").status_code == 403
    assert _client(outsider).post(URL, {"dataset_version": version.pk}, format="json").status_code == 404
    assert not TrainingRun.objects.exists()


def test_list_and_detail_show_members_only(version, local_teacher, curator, annotator, outsider):
    run = training_run_create(dataset_version=version, created_by=curator)

    listed = _client(annotator).get(URL).json()["results"]
    assert [item["id"] for item in listed] == [run.pk] and "log_tail" not in listed[0]
    detail = _client(annotator).get(f"{URL}{run.pk}/").json()
    assert detail["artifact_dir"] == run.artifact_dir and detail["stale"] is False and "report" in detail
    assert _client(outsider).get(URL).json()["results"] == []
    assert _client(outsider).get(f"{URL}{run.pk}/").status_code == 404


def test_cancel_and_resume_actions(version, local_teacher, curator, annotator, outsider):
    run = training_run_create(dataset_version=version, created_by=curator)

    assert _client(annotator).post(f"{URL}{run.pk}/cancel/").status_code == 403
    assert _client(outsider).post(f"{URL}{run.pk}/cancel/").status_code == 404
    assert _client(curator).post(f"{URL}{run.pk}/cancel/").json()["status"] == JobStatus.CANCELLED
    assert _client(curator).post(f"{URL}{run.pk}/cancel/").status_code == 400
    assert _client(curator).post(f"{URL}{run.pk}/resume/").json()["status"] == JobStatus.QUEUED


def test_reading_a_run_whose_worker_died_says_so_and_writes_nothing(version, local_teacher, curator):
    from django.utils import timezone

    run = training_run_create(dataset_version=version, created_by=curator)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=JobStatus.RUNNING, attempts=1, worker="elsewhere:1", heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    before = TrainingRun.objects.values().get(pk=run.pk)
    body = _client(curator).get(f"{URL}{run.pk}/").json()
    assert body["status"] == JobStatus.RUNNING and body["stale"] is True and body["queue"]["stale"] is True
    _client(curator).get(f"{URL}?project={version.project.slug}")
    assert TrainingRun.objects.values().get(pk=run.pk) == before  # recovery is the sweep's, never a GET's
