"""The training pages: who may launch, see, cancel and resume; htmx fragments; a live run page."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from curation.models import JobStatus
from training.models import TrainingRun
from training.services import training_run_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(version, local_teacher, curator):
    return training_run_create(dataset_version=version, created_by=curator, keep_layers=2)


def test_the_dashboard_links_curators_to_the_launch_page(client, project, version, curator):
    client.force_login(curator)
    page = client.get(reverse("curation:project_dashboard", args=[project.slug])).content.decode()
    assert reverse("training:version_train", args=[version.pk]) in page


def test_launch_page_shows_the_defaults_to_curators_only(client, version, local_teacher, curator, annotator, outsider):
    url = reverse("training:version_train", args=[version.pk])
    client.force_login(curator)
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="learning_rate" value="0.0001"' in page.content and b"tiny" in page.content
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_launching_creates_a_run_and_redirects_htmx_to_it(client, version, local_teacher, curator):
    client.force_login(curator)
    form = {"method": "sft", "student_source": "derive", "teacher": local_teacher.pk, "keep_layers": 2, "seed": 3,
            "learning_rate": 0.001, "num_epochs": 1, "max_steps": 4, "per_device_batch_size": 2, "grad_accum": 1,
            "max_seq_len": 256, "warmup_ratio": 0, "save_steps": 2, "logging_steps": 1, "packing": "on",
            "kd_temperature": 2, "kd_alpha": 0.5, "kd_jsd_beta": 0, "dpo_beta": 0.1, "lora_r": 8, "lora_alpha": 16,
            "lora_dropout": 0, "layer_selection": "even", "max_train_seconds": 0, "calibration_examples": 16,
            "recovery_steps": 0, "onpolicy_lmbda": 0.5, "onpolicy_max_new_tokens": 64, "onpolicy_temperature": 1.0}
    response = client.post(reverse("training:version_train", args=[version.pk]), form, HTTP_HX_REQUEST="true")

    run = TrainingRun.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("training:run_detail", args=[run.pk])
    assert (run.seed, run.keep_layers, run.created_by) == (3, 2, curator)
    assert run.hyperparams["max_steps"] == 4 and run.hyperparams["packing"] is True

    form["keep_layers"] = 99  # more than the teacher has: the service's error lands on the field
    again = client.post(reverse("training:version_train", args=[version.pk]), form, HTTP_HX_REQUEST="true")
    assert again.status_code == 422
    assert b"Keep between 1 and 4" in again.content and b"<html" not in again.content
    assert TrainingRun.objects.count() == 1


def test_run_page_shows_progress_chart_and_log_to_members(client, run, annotator, outsider):
    TrainingRun.objects.filter(pk=run.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now(), step=6, total_steps=30,
        metrics={"loss": 2.5, "tokens_per_second": 100.0, "eta_seconds": 12},
        metrics_history=[{"step": 2, "loss": 4.0}, {"step": 4, "loss": 3.0}, {"step": 6, "loss": 2.5}],
        log_tail="log step 6/30 loss=2.5 <script>",
    )
    client.force_login(annotator)
    page = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in page and "<polyline" in page and "width: 20%" in page
    assert "loss=2.5 &lt;script&gt;" in page  # the log is escaped
    assert "Cancel</button>" not in page  # annotators watch; curators act

    fragment = client.get(reverse("training:run_detail", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert fragment.startswith('\n<div id="live"') or fragment.lstrip().startswith('<div id="live"')
    client.force_login(outsider)
    assert client.get(reverse("training:run_detail", args=[run.pk])).status_code == 404


def test_cancel_and_resume_are_for_curators(client, run, curator, annotator):
    client.force_login(annotator)
    assert client.post(reverse("training:run_cancel", args=[run.pk])).status_code == 403

    client.force_login(curator)
    response = client.post(reverse("training:run_cancel", args=[run.pk]), HTTP_HX_REQUEST="true")
    run.refresh_from_db()
    assert response.status_code == 200 and run.status == JobStatus.CANCELLED
    assert b"Resume from the last checkpoint" in response.content

    client.post(reverse("training:run_resume", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED
    again = client.post(reverse("training:run_resume", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert again.status_code == 422 and b"Only a failed or cancelled training run" in again.content


def test_run_list_shows_only_visible_runs(client, run, annotator, outsider, project):
    client.force_login(annotator)
    assert run.name.encode() in client.get(reverse("training:run_list")).content
    assert run.name.encode() in client.get(reverse("training:run_list") + f"?project={project.slug}").content
    client.force_login(outsider)
    assert run.name.encode() not in client.get(reverse("training:run_list")).content
    assert client.get(reverse("training:run_list") + f"?project={project.slug}").status_code == 404


def test_a_finished_run_shows_its_report(client, run, curator):
    report = {"params": {"teacher": 134_515_008, "student": 63_713_088, "trainable": 63_713_088,
                         "student_to_teacher": 0.47},
              "kept_layers": [0, 3], "data": {"rows": 4, "examples": 4, "target_tokens": 40},
              "meta": {"project": "p", "dataset_version_number": 1, "dataset_version_hash": "ab" * 32},
              "train_file_sha256": "cd" * 32,
              "result": {"final_loss": 1.25, "train_loss": 2.0, "steps": 30, "total_steps": 30,
                         "wall_seconds": 9.5, "train_seconds": 5.0, "tokens_per_second": 80.0}}
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.SUCCEEDED, report=report, step=30, total_steps=30)
    client.force_login(curator)
    page = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert '<span title="134,515,008">134.5M</span> → <span title="63,713,088">63.7M</span> (47%)' in page
    assert "1.2500 / 2.0000" in page
    assert 'hx-trigger="every 2s"' not in page  # nothing left to poll for
    assert "Evaluate against the teacher" in page and reverse("training:run_download", args=[run.pk]) in page


def _finished_with_model(run, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"\0" * 3_000_000)
    (model / "checkpoint-5").mkdir()
    (model / "checkpoint-5" / "optimizer.pt").write_bytes(b"x")
    # <artifact_dir>/model: where training exports a student (the one rule, training.ml.config.student_model_dir)
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.SUCCEEDED, artifact_dir=str(tmp_path))
    return model


def test_download_model_streams_a_zip_of_the_exported_student(client, run, curator, annotator, tmp_path):
    import io
    import zipfile

    url = reverse("training:run_download", args=[run.pk])
    client.force_login(curator)
    assert client.get(url).status_code == 404  # nothing exported yet
    _finished_with_model(run, tmp_path)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    from django.utils.text import slugify

    prefix = f"{slugify(run.name)}-run{run.pk}"
    assert sorted(archive.namelist()) == [f"{prefix}/config.json", f"{prefix}/model.safetensors"]
    assert archive.read(f"{prefix}/model.safetensors") == b"\0" * 3_000_000 and archive.testzip() is None
    client.force_login(annotator)
    assert client.get(url).status_code == 403


def test_evaluate_against_the_teacher_queues_student_and_teacher_on_the_heldout_split(
        client, run, curator, tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    from evaluation.models import EvaluationRun

    queued = []
    monkeypatch.setattr("evaluation.tasks.evaluation_run.delay", queued.append)
    _finished_with_model(run, tmp_path)
    client.force_login(curator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:run_evaluate", args=[run.pk]), headers={"HX-Request": "true"})
    evaluation = EvaluationRun.objects.get()
    assert response["HX-Redirect"] == reverse("evaluation:run_detail", args=[evaluation.pk])
    assert evaluation.dataset_version_id == run.dataset_version_id and evaluation.tasks == ["heldout"]
    assert [m["role"] for m in evaluation.models_spec] == ["teacher", "student"]
    assert evaluation.models_spec[1]["source"] == {"training_run_id": run.pk} and queued == [evaluation.pk]


def test_the_form_marks_which_fields_belong_to_which_method(client, version, local_teacher, curator):
    client.force_login(curator)
    page = client.get(reverse("training:version_train", args=[version.pk])).content.decode()
    assert 'name="kd_alpha"' in page and 'data-show-when="method=kd method=onpolicy"' in page
    assert 'data-show-when="method=onpolicy"' in page  # lmbda and the sampling settings
    assert 'data-show-when="student_source=lora"' in page and 'data-show-when="method=dpo"' in page
    assert "effective batch" in page  # help text on the hyperparameters
