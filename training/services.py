"""Training runs: create, run in a worker, cancel, resume, and recover runs whose worker died.

The web, the API, the admin and the `train` command all come here. The run itself happens in a Celery worker
(`training.tasks.training_run_task`) outside any transaction: it exports the frozen version, starts
`accelerate launch -m training.ml` and folds the subprocess's progress file into the row every second or so.
Claim, heartbeat, cancel, resume and recovery are the shared job lifecycle (`curation.jobs`): an attempt whose
worker or training process died goes back to the queue and continues from its newest checkpoint.
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

from curation.jobs import services as jobs
from curation.jobs.registry import kind_named
from curation.models import DatasetVersion, JobStatus, Teacher
from curation.services.datasets import dataset_export
from curation.services.trust import registered_model_path
from training.events import RunProgress
from training.launcher import TrainingProcess, checkpoint_step, read_report
from training.ml.config import TrainConfig
from training.models import TrainingRun
from training.selectors import cacheable_teachers, model_layers, runs_dir, teacher_folder, trainable_teachers

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
HYPERPARAMS = (
    "learning_rate", "num_epochs", "max_steps", "per_device_batch_size", "grad_accum", "max_seq_len",
    "warmup_ratio", "weight_decay", "max_grad_norm", "lr_scheduler", "save_steps", "logging_steps", "precision",
    "gradient_checkpointing", "packing", "kd_temperature", "kd_alpha", "kd_jsd_beta", "dpo_beta", "lora_r",
    "lora_alpha", "lora_dropout", "layer_selection", "calibration_examples", "recovery_steps", "onpolicy_lmbda",
    "onpolicy_max_new_tokens", "onpolicy_temperature", "max_train_seconds",
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
    if source in (Source.FOLDER, Source.LORA):
        # A curator picks a model an operator registered; a typed path would let them load any folder.
        try:
            if not (registered_model_path(student_path, field="student_path") / "config.json").is_file():
                errors["student_path"] = "The registered model is not a model folder (with config.json)."
        except ValidationError as error:
            errors.update(error.message_dict)
    needs_teacher = source == Source.DERIVE or method in (Method.KD, Method.ONPOLICY)
    if needs_teacher and teacher is None:
        teacher = next(iter(trainable_teachers(version.project)), None)
    folder = teacher_folder(teacher) if teacher is not None else None
    # KD of a student from a model folder reads an API teacher's logits from its cache (checked once the
    # hyperparameters are known): no teacher folder is needed then, only the tokenizer it names.
    cached_api_teacher = (method == Method.KD and source != Source.DERIVE and teacher is not None
                          and teacher in cacheable_teachers(version.project) and folder is None)
    if needs_teacher and not cached_api_teacher and (folder is None or not (folder / "config.json").is_file()):
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


def _check_recovery(version: DatasetVersion, recovery: DatasetVersion | None, values: dict[str, Any]) -> None:
    if recovery is None:
        if values["recovery_steps"]:
            raise ValidationError({"recovery_version": "A recovery stage needs a dataset version of teacher text."})
        return
    if recovery.project_id != version.project_id:
        raise ValidationError({"recovery_version": "The recovery version belongs to another project."})
    if values["recovery_steps"] < 1:
        raise ValidationError({"hyperparams": "Set recovery_steps to use the recovery version."})


@transaction.atomic
def training_run_create(
    *, dataset_version: DatasetVersion, created_by=None, method: str = Method.SFT, student_source: str = Source.DERIVE,
    student_path: str = "", teacher: Teacher | None = None, keep_layers: int | None = None,
    hyperparams: dict[str, Any] | None = None, seed: int = 0, name: str = "", enqueue: bool = True,
    recovery_version: DatasetVersion | None = None,
) -> TrainingRun:
    """Queue a run on a frozen version; unset hyperparameters take TrainConfig's defaults, stored on the row."""
    if teacher is not None and teacher.project_id not in (None, dataset_version.project_id):
        raise ValidationError({"teacher": f"The teacher '{teacher.name}' belongs to another project."})
    teacher, keep_layers = _check_student(dataset_version, method, student_source, student_path, teacher, keep_layers)
    values = _clean_hyperparams(hyperparams)
    _check_recovery(dataset_version, recovery_version, values)
    if method == Method.KD and teacher is not None and teacher.kind == Teacher.Kind.OPENAI:
        max_seq_len = values.get("max_seq_len", TrainConfig().max_seq_len)
        if not dataset_version.logit_caches.filter(teacher=teacher, max_seq_len=max_seq_len,
                                                   status=JobStatus.SUCCEEDED).exists():
            raise ValidationError({"teacher": (
                f"KD from the API teacher '{teacher.name}' reads its logits from a cache: build one for this "
                f"version (max_seq_len {max_seq_len}) first with \"Cache teacher logits\".")})
    try:
        TrainConfig(method=method, student_source=student_source, student_path=student_path or "-",
                    teacher_path="-", train_file="-", output_dir="-",
                    recovery_file="-" if recovery_version else "", **values).validate()
    except ValueError as error:
        raise ValidationError({"hyperparams": str(error)}) from None
    run = TrainingRun.objects.create(
        dataset_version=dataset_version, created_by=created_by, method=method, student_source=student_source,
        student_path=student_path, teacher=teacher, keep_layers=keep_layers, hyperparams=values, seed=seed,
        recovery_version=recovery_version,
        name=name or f"{method} on {dataset_version}",
    )
    # A random suffix: ids can repeat after a database reset, and an old folder's checkpoint must never be resumed.
    run.artifact_dir = str(runs_dir() / f"run-{run.pk}-{secrets.token_hex(4)}")
    run.save(update_fields=["artifact_dir"])
    if enqueue:
        jobs.job_enqueue(run)
    return run


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Queued (or lost) runs stop at once; a running one stops after its current step, keeping a checkpoint."""
    return jobs.job_cancel(job=run)


def training_run_resume(*, run: TrainingRun, enqueue: bool = True) -> TrainingRun:
    """Queue a failed or cancelled run again: it continues from its last checkpoint with fresh attempts."""
    return jobs.job_resume(job=run, enqueue=enqueue)


def accelerate_config() -> Path | None:
    configured = getattr(settings, "TRAINING_ACCELERATE_CONFIG", "") or os.environ.get("DISTILLERY_ACCELERATE_CONFIG")
    return Path(configured) if configured else None


def training_run_config(
    run: TrainingRun, *, train_file: Path, recovery_file: Path | None = None, logit_cache: Path | None = None
) -> TrainConfig:
    teacher = teacher_folder(run.teacher) if run.teacher else None
    if run.teacher and teacher is None and run.method == Method.KD:
        from training.logit_caches import remote_tokenizer_folder

        teacher = remote_tokenizer_folder(run.teacher)  # the student must share it; the logits come from the cache
    version = run.dataset_version
    return TrainConfig(
        method=run.method, student_source=run.student_source,
        student_path=str(registered_model_path(run.student_path, field="student_path")) if run.student_path else "",
        teacher_path=str(teacher or ""), keep_layers=run.keep_layers or 10, train_file=str(train_file),
        output_dir=run.artifact_dir, seed=run.seed, recovery_file=str(recovery_file or ""),
        logit_cache_dir=str(logit_cache or ""), **run.hyperparams,
        meta={"training_run": run.pk, "project": version.project.slug, "dataset_version": version.pk,
              "dataset_version_number": version.number, "dataset_version_hash": version.content_hash},
    )


def training_run_execute(*, run_id: int) -> str | None:
    """Claim a queued run and train it to the end. Returns the final status (None: nothing to do).

    A second delivery of the same task finds the run claimed and does nothing, unless the worker that claimed
    it is gone (Celery redelivers after a pool process is killed): then it takes the run over. A training
    process that dies without an answer (killed, out of memory) sends the run back to the queue.
    """
    return jobs.job_run(TrainingRun, run_id, _train, select_related=("dataset_version__project", "teacher"))


def _train(run: TrainingRun) -> str:
    process = TrainingProcess(run.artifact_dir, accelerate_config())
    progress = RunProgress.from_run(run)
    try:
        data = Path(run.artifact_dir) / "data" / "train.jsonl"
        count = dataset_export(version=run.dataset_version, format="dpo" if run.method == Method.DPO else "sft",
                               split="train", out=data)
        if count == 0:
            raise jobs.JobFailed(f"The train split of {run.dataset_version} exports no rows for {run.method}.")
        recovery = None
        if run.recovery_version_id:
            # Every split of the recovery version: it is general teacher text, not an evaluation set.
            recovery = data.with_name("recovery.jsonl")
            dataset_export(version=run.recovery_version, format="sft", split="all", out=recovery)
        cache = None
        if run.method == Method.KD:
            from training.logit_caches import logit_cache_for

            cache = logit_cache_for(dataset_version=run.dataset_version, teacher=run.teacher,
                                    max_seq_len=run.hyperparams.get("max_seq_len", TrainConfig().max_seq_len),
                                    train_file=data)
            if cache is None and teacher_folder(run.teacher) is None:
                raise jobs.JobFailed(f"No finished logit cache of the API teacher {run.teacher} lines up with this "
                                     "export: build the cache again, then resume the run.")
        process.start(training_run_config(run, train_file=data, recovery_file=recovery,
                                          logit_cache=Path(cache.folder) if cache else None))
        _follow(run, process, progress)
        outcome = process.outcome()
    finally:
        process.stop()  # whatever happened, the process must not outlive the attempt
        progress.apply(process.new_events())
        jobs.job_beat(TrainingRun, run.pk, **progress.fields(), log_tail=process.log_tail(),
                      checkpoint_step=checkpoint_step(run.artifact_dir))
    progress.finish(outcome.result)
    jobs.job_beat(TrainingRun, run.pk, **progress.fields(),
                  **({"report": read_report(run.artifact_dir)} if outcome.result else {}))
    if outcome.lost:
        raise jobs.JobLost(outcome.error)
    if outcome.status == JobStatus.FAILED:
        raise jobs.JobFailed(outcome.error)
    return outcome.status


def _follow(run: TrainingRun, process: TrainingProcess, progress: RunProgress) -> None:
    """Fold progress into the row while the process lives; one UPDATE also reads the cancel flag."""
    last_write, cancel_sent = 0.0, False
    every = kind_named(TrainingRun.job_kind).policy.heartbeat_seconds / 2
    while process.running:
        time.sleep(POLL_SECONDS)
        events = process.new_events()
        progress.apply(events)
        if not events and time.monotonic() - last_write < every:
            continue
        fields = {**progress.fields(), "log_tail": process.log_tail(),
                  "checkpoint_step": checkpoint_step(run.artifact_dir)}
        # False: cancel was asked for, or the run was taken from this worker; either way, stop cleanly.
        if not jobs.job_beat(TrainingRun, run.pk, **fields) and not cancel_sent:
            process.cancel()
            cancel_sent = True
        last_write = time.monotonic()
