"""The loss chart of the run page as SVG coordinates, computed on the server (no chart library)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LossChart:
    width: int
    height: int
    points: str  # "x,y x,y ..." for an SVG polyline
    first_step: int
    last_step: int
    low: float
    high: float
    last_loss: float


def loss_chart(history: list[dict], *, width: int = 640, height: int = 160, pad: int = 6) -> LossChart | None:
    """Loss against step, scaled into the box; None until there are two points to join."""
    series = [(p["step"], p["loss"]) for p in history if isinstance(p.get("loss"), int | float)]
    if len(series) < 2:
        return None
    steps = [s for s, _ in series]
    losses = [v for _, v in series]
    first, last = min(steps), max(steps)
    low, high = min(losses), max(losses)
    span_x = (last - first) or 1
    span_y = (high - low) or 1.0

    def x(step: int) -> float:
        return pad + (step - first) / span_x * (width - 2 * pad)

    def y(loss: float) -> float:
        return pad + (high - loss) / span_y * (height - 2 * pad)  # SVG's y grows downwards

    points = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in series)
    return LossChart(width, height, points, first, last, low, high, losses[-1])
