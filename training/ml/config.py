"""The one input of a training run: a plain dataclass, saved as JSON next to the run's outputs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

Method = Literal["sft", "kd", "onpolicy", "dpo"]
StudentSource = Literal["folder", "derive", "lora"]
LayerSelectionName = Literal["even", "importance"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

METHODS: tuple[str, ...] = ("sft", "kd", "onpolicy", "dpo")
LAYER_SELECTIONS: tuple[str, ...] = ("even", "importance")
STUDENT_SOURCES: tuple[str, ...] = ("folder", "derive", "lora")


STUDENT_MODEL_FOLDER = "model"


def student_model_dir(output_dir: Path | str) -> Path:
    """The one rule for where a run's trained student lies: `<output_dir>/model` (safetensors, tokenizer, chat
    template). TrainConfig.model_dir, TrainingRun.model_dir and evaluation all use this function."""
    return Path(output_dir) / STUDENT_MODEL_FOLDER


@dataclass
class TrainConfig:
    """Everything one training run needs; paths are local folders and files, never hub ids.

    Defaults suit a small student (tens of millions of parameters) on a few hundred curated examples.
    """

    method: Method = "sft"
    student_source: StudentSource = "derive"
    student_path: str = ""  # the student folder, or the base model for "lora"
    teacher_path: str = ""  # needed for "derive" and "kd"; elsewhere only used for the parameter count
    keep_layers: int = 10  # K of the teacher's N layers for "derive"
    # "importance": measured on calibration replies (training.ml.pruning); "even": evenly spaced
    layer_selection: LayerSelectionName = "importance"
    calibration_examples: int = 64  # rows of train_file used to choose the layers
    train_file: str = ""
    output_dir: str = ""

    learning_rate: float = 1e-4
    num_epochs: float = 3.0
    max_steps: int = -1  # -1: run num_epochs
    # > 0: stop (and export, as a success) after this many seconds of training: compare methods at equal compute.
    # The LR schedule still runs over max_steps/num_epochs, so pair it with a constant schedule or a step cap.
    max_train_seconds: float = 0.0
    per_device_batch_size: int = 4
    grad_accum: int = 1
    max_seq_len: int = 1024
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lr_scheduler: str = "cosine"
    seed: int = 42
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 10
    precision: Precision = "auto"  # auto: bf16 autocast on GPUs/CPUs with native bf16, else fp32 (weights stay fp32)
    gradient_checkpointing: bool = False
    packing: bool = True  # SFT/KD padding-free: a batch is one flat sequence with per-example positions (DPO pads)
    resume: bool = True  # continue from the last checkpoint in output_dir when there is one

    kd_temperature: float = 2.0
    kd_alpha: float = 0.5  # weight of the cross-entropy on the curated tokens; 1 - alpha goes to the divergence
    kd_jsd_beta: float = 0.0  # 0: forward KL(teacher || student), 1: reverse KL, between: generalised JSD

    # A folder written by training.ml.logit_cache for train_file: "kd" then reads the teacher's top-k from disk
    # and keeps no teacher in memory (a "derive" student still reads the teacher once to copy its layers).
    logit_cache_dir: str = ""

    # on-policy distillation (method "onpolicy"): with probability lmbda a batch's replies are sampled from the
    # student and scored by the live teacher; otherwise the curated replies are used (GKD, Agarwal et al. 2024).
    onpolicy_lmbda: float = 0.5
    onpolicy_max_new_tokens: int = 128
    onpolicy_temperature: float = 1.0

    # recovery stage: before the curated set, distil on general teacher-written conversations (an export-format
    # file), for recovery_steps steps, to heal the cut of a derived student.
    recovery_file: str = ""
    recovery_steps: int = 0

    dpo_beta: float = 0.1

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05

    meta: dict[str, Any] = field(default_factory=dict)  # copied into report.json (run id, dataset hash, ...)

    def validate(self) -> None:
        """Raise ValueError naming every field that cannot work, before any model is loaded."""
        problems: list[str] = []
        if self.method not in METHODS:
            problems.append(f"method must be one of {METHODS}, not {self.method!r}")
        if self.student_source not in STUDENT_SOURCES:
            problems.append(f"student_source must be one of {STUDENT_SOURCES}, not {self.student_source!r}")
        if self.student_source in ("folder", "lora") and not self.student_path:
            problems.append(f"student_path is required for student_source={self.student_source!r}")
        if (self.student_source == "derive" or self.method in ("kd", "onpolicy")) and not self.teacher_path:
            problems.append("teacher_path is required to derive a student or to distil logits")
        if self.layer_selection not in LAYER_SELECTIONS:
            problems.append(f"layer_selection must be one of {LAYER_SELECTIONS}, not {self.layer_selection!r}")
        if self.calibration_examples < 1:
            problems.append("calibration_examples must be at least 1")
        if self.logit_cache_dir and self.method != "kd":
            problems.append("logit_cache_dir is used by method 'kd' only")
        if not 0.0 <= self.onpolicy_lmbda <= 1.0:
            problems.append("onpolicy_lmbda must lie in [0, 1]")
        if self.onpolicy_max_new_tokens < 1 or self.onpolicy_temperature <= 0:
            problems.append("onpolicy_max_new_tokens must be >= 1 and onpolicy_temperature positive")
        if self.recovery_steps < 0 or (self.recovery_steps > 0 and not self.recovery_file):
            problems.append("recovery_steps needs a recovery_file (and cannot be negative)")
        if self.recovery_steps > 0 and self.method == "dpo":
            problems.append("the recovery stage distils replies: it does not apply to DPO")
        if self.student_source == "derive" and self.keep_layers < 1:
            problems.append("keep_layers must be at least 1")
        if not self.train_file:
            problems.append("train_file is required")
        if not self.output_dir:
            problems.append("output_dir is required")
        if self.max_steps == 0 or (self.max_steps < 0 and self.num_epochs <= 0):
            problems.append("set max_steps > 0 or num_epochs > 0")
        if self.max_train_seconds < 0:
            problems.append("max_train_seconds cannot be negative")
        if self.per_device_batch_size < 1 or self.grad_accum < 1 or self.max_seq_len < 8:
            problems.append("per_device_batch_size and grad_accum must be >= 1, max_seq_len >= 8")
        if not 0.0 <= self.kd_alpha <= 1.0 or not 0.0 <= self.kd_jsd_beta <= 1.0:
            problems.append("kd_alpha and kd_jsd_beta must lie in [0, 1]")
        if not 0.0 <= self.warmup_ratio < 1.0:
            problems.append("warmup_ratio must lie in [0, 1)")
        if self.kd_temperature <= 0:
            problems.append("kd_temperature must be positive")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            problems.append(f"precision must be auto, fp32, bf16 or fp16, not {self.precision!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: Path | str | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            # A typo in a hyperparameter must not silently fall back to the default.
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> TrainConfig:
        """Accept either a JSON string or a path to a JSON file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text).read_text()
        return cls.from_dict(json.loads(text))

    @property
    def checkpoints_dir(self) -> Path:
        return Path(self.output_dir) / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return student_model_dir(self.output_dir)
