"""The admin doors (launch on dataset versions, cancel on runs) and `manage.py train`."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from curation.models import JobStatus
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_admin_launch_action_asks_for_settings_then_queues_a_run(client, admin_user, version, local_teacher):
    client.force_login(admin_user)
    url = reverse("admin:curation_datasetversion_changelist")
    chosen = {"action": "launch_training", "_selected_action": [version.pk]}

    page = client.post(url, chosen)
    assert page.status_code == 200 and b"Queue training" in page.content
    assert not TrainingRun.objects.exists()

    settings = {"method": "sft", "student_source": "derive", "teacher": local_teacher.pk, "keep_layers": 2, "seed": 0,
                "learning_rate": 1e-3, "num_epochs": 1, "max_steps": 3, "per_device_batch_size": 2, "grad_accum": 1,
                "max_seq_len": 128, "warmup_ratio": 0, "save_steps": 5, "logging_steps": 1, "kd_temperature": 2,
                "kd_alpha": 0.5, "kd_jsd_beta": 0, "dpo_beta": 0.1, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0,
                "layer_selection": "even", "max_train_seconds": 0, "calibration_examples": 16, "recovery_steps": 0,
                "onpolicy_lmbda": 0.5, "onpolicy_max_new_tokens": 64, "onpolicy_temperature": 1.0}
    done = client.post(url, {**chosen, **settings, "apply": "1"}, follow=True)
    run = TrainingRun.objects.get()
    assert f"training run #{run.pk} queued" in done.content.decode()
    assert run.hyperparams["max_steps"] == 3 and run.created_by == admin_user


def test_admin_cancel_action(client, admin_user, version, local_teacher):
    from training.services import training_run_create

    run = training_run_create(dataset_version=version)
    client.force_login(admin_user)
    client.post(reverse("admin:training_trainingrun_changelist"),
                {"action": "cancel_jobs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED


def test_train_command_queues_through_the_service(version, local_teacher, capsys):
    call_command("train", "--version", str(version.pk), "--keep-layers", "2", "--set", "max_steps=3",
                 "--set", "lr_scheduler=linear")
    run = TrainingRun.objects.get()
    assert run.status == JobStatus.QUEUED and run.student_source == "derive"
    assert run.hyperparams["max_steps"] == 3 and run.hyperparams["lr_scheduler"] == "linear"
    assert f"Training run #{run.pk}" in capsys.readouterr().out


def test_train_command_reports_problems(version, local_teacher):
    with pytest.raises(CommandError, match="No dataset version"):
        call_command("train", "--version", "999999")
    with pytest.raises(CommandError, match="student_path"):
        call_command("train", "--version", str(version.pk), "--student", "/no/such/folder")
    with pytest.raises(CommandError, match="--lora needs"):
        call_command("train", "--version", str(version.pk), "--lora")
