"""Training runs through a real Celery worker process: success, cancel, and kill -9 of the worker mid-run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from curation.models import JobStatus
from tests.conftest import wait_for
from tests.training.conftest import FAST, make_version
from training.models import TrainingRun
from training.services import training_run_cancel, training_run_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LONG = {**FAST, "max_steps": 5000, "save_steps": 5, "logging_steps": 5, "learning_rate": 1e-4}


def _run(pk: int) -> TrainingRun:
    return TrainingRun.objects.get(pk=pk)


def _finished(pk: int, timeout: float = 180) -> TrainingRun:
    return wait_for(lambda: (run := _run(pk)).status in JobStatus.finished() and run, timeout=timeout,
                    message=f"run {pk} to finish")


@pytest.fixture
def setup(celery_worker, project, tiny_teacher):
    from curation.models import Teacher

    Teacher.objects.create(project=project, name="tiny", kind=Teacher.Kind.LOCAL, model_path=str(tiny_teacher))
    return celery_worker, make_version(project)


def test_a_run_goes_from_queued_to_succeeded_with_falling_loss(setup):
    worker, version = setup
    run = training_run_create(dataset_version=version, keep_layers=2, hyperparams=FAST)

    run = _finished(run.pk)

    assert run.status == JobStatus.SUCCEEDED, f"{run.error}\n{worker.log()[-3000:]}"
    losses = [point["loss"] for point in run.metrics_history]
    assert len(losses) >= 10 and losses[-1] < 0.6 * losses[0]
    assert run.step == run.total_steps == 30 and run.attempts == 1
    assert run.report["status"] == "succeeded" and (Path(run.model_dir) / "model.safetensors").exists()


def test_cancel_stops_at_the_next_step_and_keeps_a_checkpoint(setup):
    worker, version = setup
    run = training_run_create(dataset_version=version, keep_layers=2, hyperparams=LONG)
    wait_for(lambda: _run(run.pk).step >= 3, timeout=120, message="the run to take steps")

    training_run_cancel(run=_run(run.pk))
    run = _finished(run.pk, timeout=60)

    assert run.status == JobStatus.CANCELLED, f"{run.error}\n{worker.log()[-3000:]}"
    assert 3 <= run.checkpoint_step == run.step < 5000  # saved where it stopped, not at the next save_steps
    assert (Path(run.artifact_dir) / "checkpoints" / f"checkpoint-{run.step}").is_dir()
    assert run.model_dir == ""


def test_killing_the_worker_mid_run_resumes_from_the_checkpoint(setup):
    """kill -9 of the whole worker: the run is taken up again when a worker starts, never left running."""
    worker, version = setup
    run = training_run_create(dataset_version=version, keep_layers=2, hyperparams=LONG)
    wait_for(lambda: _run(run.pk).checkpoint_step >= 10, timeout=120, message="a checkpoint at step 10")

    worker.kill()
    progress = Path(run.artifact_dir) / "progress.jsonl"
    size = progress.stat().st_size
    time.sleep(3)
    assert progress.stat().st_size == size  # the training process died with its worker: no orphan writes on
    lost = _run(run.pk)
    assert lost.status == JobStatus.RUNNING and lost.attempts == 1

    worker.start()  # at start, the worker finds the run whose process is gone and queues it again
    resumed = wait_for(
        lambda: (r := _run(run.pk)).attempts == 2 and r.metrics.get("resumed_from_step", 0) >= 10 and r,
        timeout=120, message="the run to resume from its checkpoint",
    )
    assert resumed.status == JobStatus.RUNNING
    assert "is gone" in resumed.error and "newest checkpoint" in resumed.error

    training_run_cancel(run=resumed)
    assert _finished(run.pk, timeout=60).status == JobStatus.CANCELLED
