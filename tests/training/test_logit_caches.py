"""Offline teacher logits as a job: three doors, one service, a worker build, and KD that uses the cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from curation.models import JobStatus
from tests.training.conftest import FAST
from training.logit_caches import logit_cache_create, logit_cache_run
from training.ml.logit_cache import CacheManifest
from training.models import LogitCache
from training.services import training_run_create, training_run_execute

pytestmark = pytest.mark.django_db


def test_api_creates_once_and_keeps_outsiders_and_annotators_out(client, version, local_teacher, curator, annotator,
                                                                  outsider):
    client.force_login(curator)
    body = {"dataset_version": version.pk, "teacher": "tiny", "top_k": 8}
    first = client.post("/api/v1/logit-caches/", body, content_type="application/json")
    assert first.status_code == 201, first.content
    again = client.post("/api/v1/logit-caches/", body, content_type="application/json")
    assert again.json()["id"] == first.json()["id"] and LogitCache.objects.count() == 1
    assert first.json()["status"] == JobStatus.QUEUED and first.json()["queue"]["queue"] == "training"
    assert client.post("/api/v1/logit-caches/", {**body, "top_k": 0}, content_type="application/json").status_code == 400
    client.force_login(annotator)
    assert client.post("/api/v1/logit-caches/", body, content_type="application/json").status_code == 403
    assert client.get(f"/api/v1/logit-caches/{first.json()['id']}/").status_code == 200
    client.force_login(outsider)
    assert client.get(f"/api/v1/logit-caches/{first.json()['id']}/").status_code == 404
    assert client.get("/api/v1/logit-caches/").json()["results"] == []


def test_button_queues_a_cache_and_shows_it(client, version, local_teacher, curator):
    client.force_login(curator)
    url = reverse("training:version_cache_logits", args=[version.pk])
    page = client.post(url, {"teacher": local_teacher.pk, "top_k": 4}, HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and b"Cache teacher logits" in page.content
    cache = LogitCache.objects.get()
    assert (cache.teacher, cache.top_k, cache.status) == (local_teacher, 4, JobStatus.QUEUED)
    assert client.post(url, {"teacher": local_teacher.pk, "top_k": 5000}, HTTP_HX_REQUEST="true").status_code == 422


@pytest.mark.slow
def test_command_builds_the_cache_and_kd_training_uses_it(version, local_teacher, capsys):
    call_command("cache_logits", str(version.pk), "--teacher", "tiny", "--top-k", "16", "--now")
    cache = LogitCache.objects.get()
    assert cache.status == JobStatus.SUCCEEDED and cache.attempts == 1, cache.error
    manifest = CacheManifest.load(cache.folder)
    assert manifest.complete and manifest.sha256 == cache.sha256 and manifest.top_k == 16
    assert cache.tokens == manifest.tokens > 0 and cache.size_bytes == manifest.size_bytes > 0
    assert "succeeded" in capsys.readouterr().out
    assert logit_cache_run(job_id=cache.pk) is None  # a second delivery does nothing

    run = training_run_create(dataset_version=version, method="kd", enqueue=False, keep_layers=2,
                              hyperparams={**FAST, "max_steps": 4, "layer_selection": "even"})
    assert training_run_execute(run_id=run.pk) == JobStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.report["logit_cache"]["sha256"] == cache.sha256
    assert run.report["config"]["logit_cache_dir"] == cache.folder
    assert (Path(run.model_dir) / "model.safetensors").exists()


def test_a_cache_needs_a_local_teacher_folder_and_training_rows(version, project):
    from django.core.exceptions import ValidationError

    from curation.models import Teacher

    gguf = Teacher.objects.create(project=project, name="gguf", kind=Teacher.Kind.LOCAL, model_path="tiny.gguf",
                                  engine=Teacher.Engine.LLAMA_CPP)
    with pytest.raises(ValidationError, match="local teacher saved as a model folder"):
        logit_cache_create(dataset_version=version, teacher=gguf, enqueue=False)
    remote = Teacher.objects.create(project=project, name="remote", kind=Teacher.Kind.OPENAI,
                                    base_url="http://127.0.0.1:9/v1", model_name="m")
    with pytest.raises(ValidationError, match="private"):  # loopback, and no operator allowed it
        logit_cache_create(dataset_version=version, teacher=remote, enqueue=False)
