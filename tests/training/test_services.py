"""Training services against the real database: validation, cancel/resume, lost-run recovery, execution."""

from __future__ import annotations

import json
import socket
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from curation.models import JobStatus, Project, Teacher
from tests.training.conftest import FAST, make_version
from training.models import TrainingRun
from training.services import (
    default_hyperparams,
    training_run_cancel,
    training_run_create,
    training_run_execute,
    training_run_resume,
)

pytestmark = pytest.mark.django_db


def test_create_fills_defaults_and_picks_the_local_teacher(version, local_teacher, curator):
    run = training_run_create(dataset_version=version, created_by=curator, hyperparams={"max_steps": 5})

    assert run.status == JobStatus.QUEUED
    assert run.teacher == local_teacher
    assert run.keep_layers == 4  # min(10, the tiny teacher's 4 layers)
    assert run.hyperparams == {**default_hyperparams(), "max_steps": 5}
    assert Path(run.artifact_dir).name.startswith(f"run-{run.pk}-")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"hyperparams": {"lerning_rate": 1e-4}}, "hyperparams"),
        ({"hyperparams": {"max_steps": "ten"}}, "hyperparams"),
        ({"hyperparams": {"kd_alpha": 2.0}}, "hyperparams"),
        ({"keep_layers": 9}, "keep_layers"),
        ({"method": "rlhf"}, "method"),
        ({"student_source": "folder", "student_path": "/nowhere"}, "student_path"),
    ],
)
def test_create_rejects_what_cannot_train(version, local_teacher, kwargs, field):
    with pytest.raises(ValidationError) as error:
        training_run_create(dataset_version=version, **kwargs)
    assert field in error.value.message_dict
    assert not TrainingRun.objects.exists()


def test_derive_without_a_teacher_folder_is_refused(version, project):
    Teacher.objects.create(project=project, name="api", kind=Teacher.Kind.OPENAI, base_url="http://x:1/v1")
    with pytest.raises(ValidationError) as error:
        training_run_create(dataset_version=version)
    assert "teacher" in error.value.message_dict


def test_dpo_needs_preference_pairs(project, local_teacher):
    with pytest.raises(ValidationError, match="no preference pairs"):
        training_run_create(dataset_version=make_version(project, rejected=False), method="dpo")


def test_a_teacher_of_another_project_is_refused(version, tiny_teacher):
    from tests.factories import ProjectFactory

    other = Teacher.objects.create(project=ProjectFactory(), name="x", kind="local", model_path=str(tiny_teacher))
    with pytest.raises(ValidationError, match="another project"):
        training_run_create(dataset_version=version, teacher=other)


def test_cancel_stops_a_queued_run_at_once_and_asks_a_running_one(version, local_teacher):
    queued = training_run_create(dataset_version=version)
    assert training_run_cancel(run=queued).status == JobStatus.CANCELLED

    running = training_run_create(dataset_version=version)
    TrainingRun.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    running.refresh_from_db()
    running = training_run_cancel(run=running)
    assert running.status == JobStatus.RUNNING and running.cancel_requested

    with pytest.raises(ValidationError, match="already finished"):
        training_run_cancel(run=queued)


def test_resume_queues_a_cancelled_run_with_fresh_attempts(version, local_teacher):
    run = training_run_create(dataset_version=version)
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED, attempts=3, error="boom")
    run.refresh_from_db()
    run = training_run_resume(run=run)
    assert (run.status, run.attempts, run.error) == (JobStatus.QUEUED, 0, "")
    with pytest.raises(ValidationError, match="Only a failed or cancelled training run"):
        training_run_resume(run=run)


def _running(version, **fields) -> TrainingRun:
    run = training_run_create(dataset_version=version, enqueue=False)
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING, **fields)
    return run


def test_execute_does_nothing_for_a_run_that_is_not_queued(version, local_teacher):
    run = training_run_create(dataset_version=version, enqueue=False)
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.CANCELLED)
    assert training_run_execute(run_id=run.pk) is None


@pytest.mark.slow
def test_execute_trains_through_accelerate_and_stores_progress_and_report(version, local_teacher):
    """The worker's code path, called in this process: export, subprocess, progress into the row."""
    run = training_run_create(dataset_version=version, enqueue=False, keep_layers=2, hyperparams=FAST)

    assert training_run_execute(run_id=run.pk) == JobStatus.SUCCEEDED

    run.refresh_from_db()
    losses = [point["loss"] for point in run.metrics_history]
    assert run.status == JobStatus.SUCCEEDED and run.step == run.total_steps == 30
    assert losses[-1] < 0.6 * losses[0]
    assert run.attempts == 1 and run.worker == "" and run.checkpoint_step == 30
    assert run.report["meta"]["dataset_version_hash"] == version.content_hash
    assert run.report["data"]["examples"] == version.train_count
    assert run.report["params"]["teacher"] > run.report["params"]["student"]
    assert (Path(run.model_dir) / "model.safetensors").exists()
    assert "log step 30/30" in run.log_tail
    exported = (Path(run.artifact_dir) / "data" / "train.jsonl").read_text().splitlines()
    assert json.loads(exported[0])["messages"][-1]["role"] == "assistant"


def test_onpolicy_with_a_recovery_version_of_teacher_text(project, version, local_teacher):
    from training.services import training_run_config

    general = make_version(project)
    with pytest.raises(ValidationError, match="recovery stage needs"):
        training_run_create(dataset_version=version, method="onpolicy", hyperparams={"recovery_steps": 5},
                            enqueue=False)
    run = training_run_create(dataset_version=version, method="onpolicy", recovery_version=general,
                              hyperparams={"recovery_steps": 5, "onpolicy_lmbda": 0.8}, enqueue=False)
    assert run.teacher == local_teacher and run.recovery_version == general
    config = training_run_config(run, train_file=Path("/x/train.jsonl"), recovery_file=Path("/x/recovery.jsonl"))
    assert (config.method, config.recovery_file, config.recovery_steps) == ("onpolicy", "/x/recovery.jsonl", 5)
    assert config.onpolicy_lmbda == 0.8 and config.layer_selection == "importance"
    config.validate()
    other = make_version(Project.objects.create(name="other", slug="other"))
    with pytest.raises(ValidationError, match="another project"):
        training_run_create(dataset_version=version, recovery_version=other, hyperparams={"recovery_steps": 1},
                            enqueue=False)
