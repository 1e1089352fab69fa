"""run_training: a TrainConfig in; a model folder, report.json and a TrainResult out."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.ml.config import TrainConfig
from training.ml.progress import ProgressCallback, ProgressFn, StopFn
from training.ml.protocol import complete_checkpoints


@dataclass
class TrainResult:
    status: str  # "succeeded" or "cancelled" (stopped on request; the checkpoint is the resume point)
    output_dir: str
    model_dir: str | None
    checkpoint: str | None
    final_loss: float | None  # last logged training loss
    train_loss: float | None  # mean over the whole run
    steps: int
    total_steps: int
    wall_seconds: float
    train_seconds: float
    tokens: int
    tokens_per_second: float | None
    teacher_params: int | None
    student_params: int
    trainable_params: int
    resumed_from_step: int
    report_path: str | None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def last_checkpoint(config: TrainConfig) -> str | None:
    """The newest complete checkpoint (a half-written one from a killed process is passed over)."""
    found = complete_checkpoints(config.checkpoints_dir)
    return str(found[0][1]) if found else None


def _check_same_vocabulary(config: TrainConfig, tokenizer: Any) -> None:
    if config.student_source == "derive":
        return  # the student uses the teacher's own tokenizer
    from training.ml.student import load_tokenizer

    if load_tokenizer(config.teacher_path).get_vocab() != tokenizer.get_vocab():
        raise ValueError("logit distillation needs the teacher and the student to share one tokenizer")


def _build_trainer(config: TrainConfig, student: Any, callback: ProgressCallback, extra: list):
    trainer, stats = _make_trainer(config, student, callback)
    for other in extra:
        trainer.add_callback(other)
    from transformers.trainer_callback import PrinterCallback

    # The Trainer prints raw log dicts when tqdm is off; progress events carry the same numbers.
    trainer.remove_callback(PrinterCallback)
    return trainer, stats


def _make_trainer(config: TrainConfig, student: Any, callback: ProgressCallback):
    if config.method == "dpo":
        from training.ml.data import load_dpo_dataset
        from training.ml.trainers import build_dpo_trainer

        dataset, stats = load_dpo_dataset(config.train_file)
        trainer = build_dpo_trainer(
            config, model=student.model, tokenizer=student.tokenizer, dataset=dataset, callbacks=[callback]
        )
        return trainer, stats

    from training.ml.data import CausalLMCollator, load_sft_dataset

    if config.method in ("kd", "onpolicy"):
        _check_same_vocabulary(config, student.tokenizer)
    dataset, stats = load_sft_dataset(config.train_file, student.tokenizer, config.max_seq_len)
    trainer = _distill_trainer(config, student, dataset, config.max_steps, config.checkpoints_dir, [callback])
    return trainer, stats


def _distill_trainer(config: TrainConfig, student: Any, dataset: Any, max_steps: int, folder: Path, callbacks):
    """SFT, KD (live or cached) or on-policy: one trainer class each, one construction."""
    from training.ml.data import CausalLMCollator
    from training.ml.trainers import DistillTrainer, OnPolicyDistillTrainer, common_arguments

    from transformers import TrainingArguments

    onpolicy = config.method == "onpolicy"
    # On-policy sampling needs each example's prompt in its own padded row.
    collator: Any = CausalLMCollator(student.tokenizer.pad_token_id, padding_free=config.packing and not onpolicy)
    cached = config.method == "kd" and bool(config.logit_cache_dir) and folder == config.checkpoints_dir
    if cached:
        from training.ml.logit_cache import CachedLogitsCollator, LogitCache

        cache = LogitCache(config.logit_cache_dir)
        cache.check(config.train_file, student.tokenizer, config.max_seq_len)
        collator = CachedLogitsCollator(collator, cache)
    args = TrainingArguments(**{**common_arguments(config), "output_dir": str(folder), "max_steps": max_steps})
    kwargs: dict[str, Any] = {}
    trainer_class = DistillTrainer
    if onpolicy and folder == config.checkpoints_dir:
        from training.ml.student import eos_token_ids

        trainer_class = OnPolicyDistillTrainer
        kwargs = {
            "pad_token_id": student.tokenizer.pad_token_id,
            "eos_token_ids": eos_token_ids(student.model, student.tokenizer),
        }
    return trainer_class(
        model=student.model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=student.tokenizer,
        callbacks=callbacks,
        teacher=student.teacher,
        train_config=config,
        cached_teacher=cached,
        **kwargs,
    )


def run_recovery(config: TrainConfig, student: Any, progress: ProgressFn | None, should_stop: StopFn | None):
    """The recovery stage: distil on general teacher text before the curated set (live KD when the teacher is
    in memory, else sequence-level distillation: SFT on the teacher's own replies). Done once per run folder;
    a resumed run reloads the recovered weights instead of repeating it."""
    import torch

    folder = Path(config.output_dir) / "recovery"
    done = folder / "model"
    if (done / "model.safetensors").exists():
        from safetensors.torch import load_file

        student.model.load_state_dict(load_file(str(done / "model.safetensors")), strict=False)
        return json.loads((folder / "summary.json").read_text())
    from training.ml.data import load_sft_dataset

    dataset, stats = load_sft_dataset(config.recovery_file, student.tokenizer, config.max_seq_len)
    stage = ProgressCallback(
        (lambda event: progress({**event, "stage": "recovery"})) if progress else None, should_stop
    )
    trainer = _distill_trainer(config, student, dataset, config.recovery_steps, folder / "checkpoints", [stage])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    started = time.monotonic()
    output = trainer.train(resume_from_checkpoint=None)
    summary = {
        "steps": trainer.state.global_step,
        "examples": stats.examples,
        "train_loss": output.training_loss if trainer.state.global_step else None,
        "seconds": round(time.monotonic() - started, 2),
        "stopped": stage.stopped,
        "with_teacher_logits": student.teacher is not None,
    }
    if not stage.stopped:
        folder.mkdir(parents=True, exist_ok=True)
        student.model.save_pretrained(done)
        (folder / "summary.json").write_text(json.dumps(summary))
    del trainer
    torch.set_grad_enabled(True)
    return summary


def _export(trainer: Any, tokenizer: Any, folder: Path) -> None:
    from training.ml.student import export_student

    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        if trainer.is_world_process_zero():
            export_student(model, tokenizer, folder)
    else:
        # save_model gathers sharded weights (FSDP, DeepSpeed) before the main process writes them.
        model.config.use_cache = True
        trainer.save_model(str(folder))
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(folder)


def run_training(
    config: TrainConfig,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    callbacks: list | None = None,
) -> TrainResult:
    """Train one student; resumes from the last checkpoint in output_dir when config.resume is set.

    `callbacks` are extra TrainerCallbacks (the throughput bench times steps with one).
    """
    config.validate()
    if not Path(config.train_file).is_file():
        raise FileNotFoundError(f"train_file {config.train_file} does not exist")
    wall_start = time.monotonic()
    from transformers import set_seed

    from curation.teachers.threads import apply_model_threads

    # The same thread rule as generation and evaluation; processes launched together share the cores.
    apply_model_threads(processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))

    from training.ml.student import build_student

    set_seed(config.seed)  # before building: LoRA initialisation draws random numbers
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    student = build_student(config)
    recovery = None
    if config.recovery_steps > 0 and last_checkpoint(config) is None:
        recovery = run_recovery(config, student, progress, should_stop)
        if recovery["stopped"]:
            # Cancelled during recovery: nothing of the main stage exists, the next attempt redoes recovery.
            return _cancelled_in_recovery(config, student, wall_start)
    callback = ProgressCallback(progress, should_stop)
    extra = list(callbacks or [])
    budget = None
    if config.max_train_seconds > 0:
        from training.ml.progress import TimeBudgetCallback

        budget = TimeBudgetCallback(config.max_train_seconds)
        extra.append(budget)
    trainer, stats = _build_trainer(config, student, callback, extra)

    resume_from = last_checkpoint(config) if config.resume else None
    train_start = time.monotonic()
    output = trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.monotonic() - train_start
    state = trainer.state
    speed = callback.snapshot(state)

    model_dir = None
    if not callback.stopped:
        _export(trainer, student.tokenizer, config.model_dir)
        model_dir = str(config.model_dir)
    result = TrainResult(
        status="cancelled" if callback.stopped else "succeeded",
        output_dir=str(out),
        model_dir=model_dir,
        checkpoint=last_checkpoint(config),
        final_loss=callback.last_loss,
        train_loss=output.training_loss if state.global_step else None,
        steps=state.global_step,
        total_steps=state.max_steps,
        wall_seconds=round(time.monotonic() - wall_start, 2),
        train_seconds=round(train_seconds, 2),
        tokens=state.num_input_tokens_seen,
        tokens_per_second=speed["tokens_per_second"],
        teacher_params=student.teacher_params,
        student_params=student.student_params,
        trainable_params=student.trainable_params,
        resumed_from_step=callback.start_step,
        report_path=str(out / "report.json"),
        metrics={
            **{k: v for k, v in output.metrics.items() if isinstance(v, int | float)},
            **({"time_budget_reached": budget.reached} if budget else {}),
            **({"onpolicy_batches": trainer.onpolicy_batches} if hasattr(trainer, "onpolicy_batches") else {}),
        },
    )
    if trainer.is_world_process_zero():
        write_report(config, result, stats, student, state.log_history, recovery)
    return result


def _cancelled_in_recovery(config: TrainConfig, student: Any, wall_start: float) -> TrainResult:
    return TrainResult(
        status="cancelled", output_dir=config.output_dir, model_dir=None, checkpoint=None, final_loss=None,
        train_loss=None, steps=0, total_steps=0, wall_seconds=round(time.monotonic() - wall_start, 2),
        train_seconds=0.0, tokens=0, tokens_per_second=None, teacher_params=student.teacher_params,
        student_params=student.student_params, trainable_params=student.trainable_params, resumed_from_step=0,
        report_path=None,
    )


def write_report(
    config: TrainConfig, result: TrainResult, stats: Any, student: Any, history: list, recovery: dict | None = None
) -> Path:
    import torch
    import transformers

    from training.ml.trainers import resolve_precision

    params = {
        "teacher": result.teacher_params,
        "student": result.student_params,
        "trainable": result.trainable_params,
        "student_to_teacher": round(result.student_params / result.teacher_params, 4)
        if result.teacher_params
        else None,
    }
    report = {
        "status": result.status,
        "config": config.to_dict(),
        "meta": config.meta,
        "train_file_sha256": file_sha256(config.train_file),
        "data": asdict(stats),
        "params": params,
        "kept_layers": student.kept_layers,
        "layer_selection": student.notes.get("layer_selection"),
        "recovery": recovery,
        "logit_cache": _cache_summary(config),
        "result": result.to_dict(),
        "loss_history": [
            {"step": entry["step"], "loss": entry["loss"]} for entry in history if "loss" in entry
        ],
        "precision": resolve_precision(config),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    path = Path(config.output_dir) / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def _cache_summary(config: TrainConfig) -> dict | None:
    if not config.logit_cache_dir:
        return None
    from training.ml.logit_cache import CacheManifest

    manifest = CacheManifest.load(config.logit_cache_dir)
    return {"folder": config.logit_cache_dir, "teacher": manifest.teacher, "top_k": manifest.top_k,
            "sha256": manifest.sha256, "size_bytes": manifest.size_bytes}
