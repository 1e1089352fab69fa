"""Training runs: create, run in a worker, cancel, resume, and recover runs whose worker died.

The web, the API, the admin and the `train` command all come here. The run itself happens in a Celery worker
(`training.tasks.training_run_task`) outside any transaction: it exports the frozen version, starts
`accelerate launch -m training.ml` and folds the subprocess's progress file into the row every second or so.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from curation.models import DatasetVersion, JobStatus, Teacher
from curation.services.datasets import dataset_export
from training.events import RunProgress
from training.launcher import Outcome, TrainingProcess, checkpoint_step, read_report
from training.ml.config import TrainConfig
from training.models import TrainingRun
from training.selectors import (
    HEARTBEAT_SECONDS,
    max_attempts,
    model_layers,
    run_is_stale,
    runs_dir,
    stale_runs,
    teacher_folder,
    this_worker,
    trainable_teachers,
)

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
HYPERPARAMS = (
    "learning_rate", "num_epochs", "max_steps", "per_device_batch_size", "grad_accum", "max_seq_len",
    "warmup_ratio", "weight_decay", "max_grad_norm", "lr_scheduler", "save_steps", "logging_steps", "precision",
    "gradient_checkpointing", "packing", "kd_temperature", "kd_alpha", "kd_jsd_beta", "dpo_beta", "lora_r",
    "lora_alpha", "lora_dropout",
)
Method, Source = TrainingRun.Method, TrainingRun.StudentSource


def default_hyperparams() -> dict[str, Any]:
    defaults = TrainConfig()
    return {key: getattr(defaults, key) for key in HYPERPARAMS}


def _clean_hyperparams(given: dict[str, Any] | None) -> dict[str, Any]:
    values = default_hyperparams()
    unknown = sorted(set(given or {}) - set(values))
    if unknown:
        raise ValidationError({"hyperparams": f"Unknown settings: {', '.join(unknown)}."})
    for key, value in (given or {}).items():
        default = values[key]
        ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
        if not ok or (isinstance(value, bool) and not isinstance(default, bool)):
            raise ValidationError({"hyperparams": f"{key} must be a {type(default).__name__}, not {value!r}."})
        values[key] = float(value) if isinstance(default, float) else value
    return values


def _data_path(path: str) -> Path:
    """Relative paths live in the data dir, like teacher paths."""
    return Path(path) if Path(path).is_absolute() else Path(settings.DATA_DIR) / path


def _check_student(version: DatasetVersion, method: str, source: str, student_path: str, teacher: Teacher | None,
                   keep_layers: int | None) -> tuple[Teacher | None, int | None]:
    """The teacher and K the run will use; every problem is reported at once, per field."""
    errors: dict[str, str] = {}
    if method not in Method.values:
        errors["method"] = f"Unknown method '{method}'. Use one of: {', '.join(Method.values)}."
    if source not in Source.values:
        errors["student_source"] = f"Unknown student source '{source}'. Use one of: {', '.join(Source.values)}."
    if method == Method.DPO and version.pair_count == 0:
        errors["method"] = "This version has no preference pairs (rankings or edits) to train DPO on."
    if source in (Source.FOLDER, Source.LORA) and not (_data_path(student_path) / "config.json").is_file():
        errors["student_path"] = "Give a model folder (with config.json) for the student or the LoRA base."
    needs_teacher = source == Source.DERIVE or method == Method.KD
    if needs_teacher and teacher is None:
        teacher = next(iter(trainable_teachers(version.project)), None)
    folder = teacher_folder(teacher) if teacher is not None else None
    if needs_teacher and (folder is None or not (folder / "config.json").is_file()):
        errors["teacher"] = ("Deriving a student or distilling logits needs a local teacher saved as a model "
                             "folder (for the demo: `make demo-model`, then `manage.py load_demo`).")
    if source == Source.DERIVE and folder is not None and not errors.get("teacher"):
        layers = model_layers(folder) or 0
        keep_layers = keep_layers or min(10, layers)
        if not 1 <= keep_layers <= layers:
            errors["keep_layers"] = f"Keep between 1 and {layers} of the teacher's {layers} layers."
    if errors:
        raise ValidationError(errors)
    return teacher, keep_layers if source == Source.DERIVE else None


@transaction.atomic
def training_run_create(
    *, dataset_version: DatasetVersion, created_by=None, method: str = Method.SFT, student_source: str = Source.DERIVE,
    student_path: str = "", teacher: Teacher | None = None, keep_layers: int | None = None,
    hyperparams: dict[str, Any] | None = None, seed: int = 0, name: str = "", enqueue: bool = True,
) -> TrainingRun:
    """Queue a run on a frozen version; unset hyperparameters take TrainConfig's defaults, stored on the row."""
    if teacher is not None and teacher.project_id not in (None, dataset_version.project_id):
        raise ValidationError({"teacher": f"The teacher '{teacher.name}' belongs to another project."})
    teacher, keep_layers = _check_student(dataset_version, method, student_source, student_path, teacher, keep_layers)
    values = _clean_hyperparams(hyperparams)
    try:
        TrainConfig(method=method, student_source=student_source, student_path=student_path or "-",
                    teacher_path="-", train_file="-", output_dir="-", **values).validate()
    except ValueError as error:
        raise ValidationError({"hyperparams": str(error)}) from None
    run = TrainingRun.objects.create(
        dataset_version=dataset_version, created_by=created_by, method=method, student_source=student_source,
        student_path=student_path, teacher=teacher, keep_layers=keep_layers, hyperparams=values, seed=seed,
        name=name or f"{method} on {dataset_version}",
    )
    # A random suffix: ids can repeat after a database reset, and an old folder's checkpoint must never be resumed.
    run.artifact_dir = str(runs_dir() / f"run-{run.pk}-{secrets.token_hex(4)}")
    run.save(update_fields=["artifact_dir"])
    if enqueue:
        _enqueue(run.pk)
    return run


def _enqueue(run_id: int) -> None:
    from training.tasks import training_run_task

    transaction.on_commit(lambda: training_run_task.delay(run_id))


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Queued (or lost) runs stop at once; a running one stops after its current step, keeping a checkpoint."""
    runs, now = TrainingRun.objects.filter(pk=run.pk), timezone.now()
    stopped = runs.filter(status=JobStatus.QUEUED).update(status=JobStatus.CANCELLED, finished_at=now)
    if not stopped and run_is_stale(run):
        stopped = runs.filter(status=JobStatus.RUNNING).update(status=JobStatus.CANCELLED, finished_at=now, worker="")
    if not stopped and not runs.filter(status=JobStatus.RUNNING).update(cancel_requested=True):
        raise ValidationError("This run has already finished.")
    run.refresh_from_db()
    return run


@transaction.atomic
def training_run_resume(*, run: TrainingRun, enqueue: bool = True) -> TrainingRun:
    """Queue a failed or cancelled run again: it continues from its last checkpoint with fresh attempts."""
    resumed = TrainingRun.objects.filter(pk=run.pk, status__in=[JobStatus.FAILED, JobStatus.CANCELLED]).update(
        status=JobStatus.QUEUED, attempts=0, cancel_requested=False, error="", finished_at=None
    )
    if not resumed:
        raise ValidationError(f"Only a failed or cancelled run can be resumed; this one is {run.status}.")
    if enqueue:
        _enqueue(run.pk)
    run.refresh_from_db()
    return run


def training_runs_recover(*, run_ids: list[int] | None = None, enqueue: bool = True) -> dict[str, list[int]]:
    """Runs that lost their worker go back to the queue (to resume from their checkpoint) or, out of attempts, fail.

    Called when a worker starts, from the run pages, and periodically (`training.check_stale_runs`).
    """
    done: dict[str, list[int]] = {"requeued": [], "failed": [], "cancelled": []}
    for run in stale_runs():
        if run_ids is not None and run.pk not in run_ids:
            continue
        # Guarded by the heartbeat we saw: a worker that is alive after all keeps its run.
        runs = TrainingRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING, heartbeat_at=run.heartbeat_at)
        lost = f"attempt {run.attempts} lost its worker at step {run.step}"
        if run.cancel_requested:
            outcome, fields = "cancelled", {"status": JobStatus.CANCELLED, "finished_at": timezone.now()}
        elif run.attempts < max_attempts():
            outcome = "requeued"
            fields = {"status": JobStatus.QUEUED, "error": f"{lost.capitalize()}; resuming from step "
                      f"{run.checkpoint_step} (attempt {run.attempts + 1} of {max_attempts()})."}
        else:
            outcome = "failed"
            fields = {"status": JobStatus.FAILED, "finished_at": timezone.now(),
                      "error": f"The worker died {run.attempts} times (killed or out of memory); {lost}. "
                               f"Resume the run to try again from step {run.checkpoint_step}."}
        if runs.update(worker="", **fields):
            done[outcome].append(run.pk)
            logger.warning("training run %s: %s -> %s", run.pk, lost, outcome)
            if outcome == "requeued" and enqueue:
                _enqueue(run.pk)
    return done


def _claim(run_id: int) -> bool:
    now = timezone.now()
    return bool(TrainingRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, attempts=F("attempts") + 1, worker=this_worker(), heartbeat_at=now,
        started_at=Coalesce(F("started_at"), now), finished_at=None, cancel_requested=False,
    ))


def accelerate_config() -> Path | None:
    configured = getattr(settings, "TRAINING_ACCELERATE_CONFIG", "") or os.environ.get("DISTILLERY_ACCELERATE_CONFIG")
    return Path(configured) if configured else None


def training_run_config(run: TrainingRun, *, train_file: Path) -> TrainConfig:
    teacher = teacher_folder(run.teacher) if run.teacher else None
    version = run.dataset_version
    return TrainConfig(
        method=run.method, student_source=run.student_source,
        student_path=str(_data_path(run.student_path)) if run.student_path else "",
        teacher_path=str(teacher or ""), keep_layers=run.keep_layers or 10, train_file=str(train_file),
        output_dir=run.artifact_dir, seed=run.seed, **run.hyperparams,
        meta={"training_run": run.pk, "project": version.project.slug, "dataset_version": version.pk,
              "dataset_version_number": version.number, "dataset_version_hash": version.content_hash},
    )


def training_run_execute(*, run_id: int) -> str | None:
    """Claim a queued run and train it to the end. Returns the final status (None: nothing to do).

    A second delivery of the same task finds the run claimed and does nothing, unless the worker that claimed
    it is gone (Celery redelivers after a pool process is killed): then it takes the run over.
    """
    if not _claim(run_id):
        if not training_runs_recover(run_ids=[run_id], enqueue=False)["requeued"] or not _claim(run_id):
            logger.info("training run %s is not queued; nothing to do", run_id)
            return None
    run = TrainingRun.objects.select_related("dataset_version__project", "teacher").get(pk=run_id)
    process = TrainingProcess(run.artifact_dir, accelerate_config())
    progress = RunProgress.from_run(run)
    try:
        data = Path(run.artifact_dir) / "data" / "train.jsonl"
        count = dataset_export(version=run.dataset_version, format="dpo" if run.method == Method.DPO else "sft",
                               split="train", out=data)
        if count == 0:
            raise ValueError(f"the train split of {run.dataset_version} exports no rows for {run.method}")
        process.start(training_run_config(run, train_file=data))
        _follow(run, process, progress)
        outcome = process.outcome()
    except Exception as exc:  # noqa: BLE001 - whatever happened, the row must say so and the process must stop
        logger.exception("training run %s failed", run_id)
        process.stop()
        outcome = Outcome(JobStatus.FAILED, None, f"{type(exc).__name__}: {exc}")
    progress.apply(process.new_events())
    progress.finish(outcome.result)
    fields = {**progress.fields(), "status": outcome.status, "error": outcome.error, "worker": "",
              "finished_at": timezone.now(), "heartbeat_at": timezone.now(), "log_tail": process.log_tail(),
              "checkpoint_step": checkpoint_step(run.artifact_dir)}
    if outcome.result:
        fields["report"] = read_report(run.artifact_dir)
    TrainingRun.objects.filter(pk=run_id).update(**fields)
    return outcome.status


def _follow(run: TrainingRun, process: TrainingProcess, progress: RunProgress) -> None:
    """Fold progress into the row while the process lives; one UPDATE also reads the cancel flag."""
    last_write, cancel_sent = 0.0, False
    while process.running:
        time.sleep(POLL_SECONDS)
        events = process.new_events()
        progress.apply(events)
        if not events and time.monotonic() - last_write < HEARTBEAT_SECONDS:
            continue
        fields = {**progress.fields(), "heartbeat_at": timezone.now(), "log_tail": process.log_tail(),
                  "checkpoint_step": checkpoint_step(run.artifact_dir)}
        rows = TrainingRun.objects.filter(pk=run.pk)
        # 0 rows: cancel was asked for, or the run was taken from this worker; either way, stop cleanly.
        if not rows.filter(status=JobStatus.RUNNING, cancel_requested=False).update(**fields):
            rows.update(**fields)
            if not cancel_sent:
                process.cancel()
                cancel_sent = True
        last_write = time.monotonic()
