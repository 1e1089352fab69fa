"""Evaluation harness: wraps lm-eval, imports no Django.

A dataclass config in (``ModelRunConfig``), files in (held-out JSONL, task YAML),
a result dataclass out (``ModelResult``), progress through a callback. Heavy
libraries (torch, transformers, lm_eval) are imported inside the functions that
need them, so importing this package is cheap.
"""

from .config import (
    HELDOUT_GEN_TASK,
    HELDOUT_PPL_TASK,
    HELDOUT_TASKS,
    ChildDied,
    EvalOptions,
    EvaluationCancelled,
    HarnessError,
    HeldoutSpec,
    Measurements,
    MetricResult,
    ModelResult,
    ModelRunConfig,
    ModelSpec,
    TaskUnreachable,
    parse_model,
    plan_runs,
)
from .heldout import read_heldout, write_heldout_tasks
from .process import evaluate_models, run_model_subprocess

__all__ = [
    "HELDOUT_GEN_TASK",
    "HELDOUT_PPL_TASK",
    "HELDOUT_TASKS",
    "ChildDied",
    "EvalOptions",
    "EvaluationCancelled",
    "HarnessError",
    "HeldoutSpec",
    "Measurements",
    "MetricResult",
    "ModelResult",
    "ModelRunConfig",
    "ModelSpec",
    "TaskUnreachable",
    "evaluate_models",
    "parse_model",
    "plan_runs",
    "read_heldout",
    "run_model_subprocess",
    "write_heldout_tasks",
]
