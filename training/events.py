"""Folding training.ml's progress events into the fields of a TrainingRun row (no database here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Enough points for a smooth chart; older points are thinned so the JSON stays small on long runs.
MAX_HISTORY = 500
LATEST_KEYS = ("loss", "learning_rate", "tokens_per_second", "eta_seconds", "epoch", "elapsed_seconds", "tokens")
HISTORY_KEYS = ("loss", "learning_rate", "grad_norm", "ce_loss", "kd_loss", "rewards/accuracies", "rewards/margins")


@dataclass
class RunProgress:
    step: int = 0
    total_steps: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_run(cls, run: Any) -> RunProgress:
        return cls(run.step, run.total_steps, dict(run.metrics or {}), list(run.metrics_history or []))

    def apply(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("event")
            if kind == "start":
                # A resumed attempt redoes the steps after its checkpoint: drop their old points.
                resumed = event.get("resumed_from_step") or 0
                self.history = [point for point in self.history if point["step"] <= resumed]
                self.metrics["resumed_from_step"] = resumed
            if "step" in event:
                self.step = event["step"]
                self.total_steps = event.get("total") or self.total_steps
            self.metrics.update({key: event[key] for key in LATEST_KEYS if event.get(key) is not None})
            if kind == "log":
                point = {"step": event["step"], **{k: event[k] for k in HISTORY_KEYS if event.get(k) is not None}}
                self.history.append(point)
            if kind == "stopping":
                self.metrics["stopping"] = True
        if len(self.history) > MAX_HISTORY:
            # Keep the latest half as is; thin the older half to every other point.
            half = len(self.history) // 2
            self.history = self.history[:half:2] + self.history[half:]

    def fields(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "metrics": self.metrics,
            "metrics_history": self.history,
        }

    def finish(self, result: dict[str, Any] | None) -> None:
        """The result's summary numbers become the latest metrics."""
        if not result:
            return
        self.step = result.get("steps", self.step)
        self.total_steps = result.get("total_steps") or self.total_steps
        for key in ("final_loss", "train_loss", "tokens_per_second", "wall_seconds", "train_seconds", "tokens"):
            if result.get(key) is not None:
                self.metrics[key] = result[key]
        self.metrics["eta_seconds"] = 0
        self.metrics.pop("stopping", None)
