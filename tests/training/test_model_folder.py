"""One rule for a student's model folder: training writes it, the run row and evaluation read the same path."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from curation.models import JobStatus
from evaluation.services import _resolve_model, _training_spec
from training.ml.config import TrainConfig, student_model_dir
from training.models import TrainingRun
from training.services import training_run_create

pytestmark = pytest.mark.django_db


def test_run_row_config_and_evaluation_agree_on_the_student_folder(version, local_teacher, tmp_path):
    run = training_run_create(dataset_version=version, teacher=local_teacher, enqueue=False)
    artifact = tmp_path / "run"
    TrainingRun.objects.filter(pk=run.pk).update(artifact_dir=str(artifact), status=JobStatus.SUCCEEDED,
                                                 report={"result": {"model_dir": "/elsewhere"}})
    run.refresh_from_db()
    expected = student_model_dir(artifact)
    assert Path(run.model_dir) == expected == TrainConfig(output_dir=str(artifact)).model_dir
    with pytest.raises(ValidationError, match="no exported student"):
        _training_spec(version.project, run.pk)
    expected.mkdir(parents=True)
    (expected / "config.json").write_text("{}")
    # The report's copy of the path is not a second rule: the folder comes from the run's artifact dir.
    assert _training_spec(version.project, run.pk)["path"] == str(expected)


def test_relative_model_paths_resolve_in_the_data_dir_everywhere(project, settings, tmp_path):
    from curation.services.trust import SERVER_SHELL, server_resource_register

    settings.DATA_DIR = tmp_path
    (tmp_path / "students" / "s").mkdir(parents=True)
    (tmp_path / "students" / "s" / "config.json").write_text("{}")
    # An operator's raw path and a registered model name: the same folder, by the same rule.
    assert _resolve_model(project, {"kind": "hf", "path": "students/s"}, SERVER_SHELL)["path"] == str(
        tmp_path / "students" / "s")
    resource = server_resource_register(actor=SERVER_SHELL, kind="model", name="s", path="students/s")
    assert resource.full_path == tmp_path / "students" / "s"
    assert _resolve_model(project, {"kind": "hf", "path": "s"}, None)["path"] == str(tmp_path / "students" / "s")
