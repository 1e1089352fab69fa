"""Progress out, cancel in: a TrainerCallback between the Trainer and whoever launched the run."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

ProgressFn = Callable[[dict[str, Any]], None]
StopFn = Callable[[], bool]


def _clean(value: Any) -> Any:
    """JSON-safe numbers: tensors and numpy scalars to floats, NaN/inf to None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ProgressCallback(TrainerCallback):
    """Reports events to `progress` and stops at the next step once `should_stop()` is true.

    Events (dicts): "start"; "step" (at most one per `min_interval` seconds, always the last); "log" (every
    logging step: loss, learning rate, grad norm, ...); "stopping" (cancel seen, checkpoint being saved).
    Only the main process reports. A stop seen by any process is shared with all of them, or the ranks that
    carried on would wait forever for the one that left.
    """

    def __init__(
        self, progress: ProgressFn | None = None, should_stop: StopFn | None = None, min_interval: float = 1.0
    ) -> None:
        self.progress = progress
        self.should_stop = should_stop
        self.min_interval = min_interval
        self.stopped = False
        self.last_loss: float | None = None
        self.last_lr: float | None = None
        self._start_time = 0.0
        self.start_step = 0
        self._start_tokens = 0
        self._last_emit = 0.0

    def _emit(self, state: TrainerState, event: str, **extra: Any) -> None:
        if self.progress is None or not state.is_world_process_zero:
            return
        self.progress({"event": event, **self.snapshot(state), **{k: _clean(v) for k, v in extra.items()}})

    def snapshot(self, state: TrainerState) -> dict[str, Any]:
        elapsed = time.monotonic() - self._start_time
        steps_done = state.global_step - self.start_step
        tokens = state.num_input_tokens_seen - self._start_tokens
        eta = None
        if steps_done > 0 and state.max_steps:
            eta = round(elapsed / steps_done * max(state.max_steps - state.global_step, 0), 1)
        return {
            "step": state.global_step,
            "total": state.max_steps,
            "epoch": round(state.epoch or 0.0, 4),
            "loss": self.last_loss,
            "learning_rate": self.last_lr,
            "tokens": state.num_input_tokens_seen,
            "tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 else None,
            "elapsed_seconds": round(elapsed, 2),
            "eta_seconds": eta,
        }

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        self._start_time = time.monotonic()
        # On resume the counters start from the checkpoint; speed and ETA describe this session only.
        self.start_step = state.global_step
        self._start_tokens = state.num_input_tokens_seen
        self._emit(state, "start", resumed_from_step=state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        if self.should_stop is not None and self._stop_everywhere(args):
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True  # keep where we are: the checkpoint is the resume point
            self._emit(state, "stopping")
            return
        now = time.monotonic()
        if now - self._last_emit >= self.min_interval or state.global_step >= state.max_steps:
            self._last_emit = now
            self._emit(state, "step")

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kw: Any):
        logs = logs or {}
        if "loss" not in logs:
            return  # the end-of-training summary (train_runtime ...) is reported by the caller
        self.last_loss = _clean(logs["loss"])
        self.last_lr = _clean(logs.get("learning_rate"))
        extra = {k: v for k, v in logs.items() if k not in ("loss", "learning_rate", "epoch")}
        self._emit(state, "log", **extra)

    def _stop_everywhere(self, args: TrainingArguments) -> bool:
        wanted = bool(self.should_stop()) if self.should_stop is not None else False
        if args.world_size <= 1:
            return wanted
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            return wanted
        flag = torch.tensor([1 if wanted else 0], device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


class TimeBudgetCallback(TrainerCallback):
    """Ends training (as a success, with export) once `seconds` of training have passed: methods compared at equal
    wall-clock compute take as many steps as each can afford. Resumed sessions count their own time only."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = 0.0
        self.reached = False

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        self._start = time.monotonic()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        if time.monotonic() - self._start >= self.seconds:
            self.reached = True
            control.should_training_stop = True
