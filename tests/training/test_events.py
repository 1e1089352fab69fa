"""Folding progress events into run fields, and the loss chart (no database)."""

from __future__ import annotations

from types import SimpleNamespace

from training.charts import loss_chart
from training.events import MAX_HISTORY, RunProgress


def _log(step: int, loss: float) -> dict:
    return {"event": "log", "step": step, "total": 100, "loss": loss, "learning_rate": 1e-4, "tokens_per_second": 50.0}


def test_events_set_progress_latest_metrics_and_history():
    progress = RunProgress()
    progress.apply([{"event": "start", "step": 0, "total": 100, "resumed_from_step": 0}, _log(10, 2.0),
                    {"event": "step", "step": 12, "total": 100, "loss": 2.0, "eta_seconds": 44.0}])

    fields = progress.fields()
    assert (fields["step"], fields["total_steps"]) == (12, 100)
    assert fields["metrics"]["eta_seconds"] == 44.0 and fields["metrics"]["loss"] == 2.0
    assert fields["metrics_history"] == [{"step": 10, "loss": 2.0, "learning_rate": 1e-4}]


def test_a_resumed_attempt_drops_the_points_after_its_checkpoint():
    run = SimpleNamespace(step=25, total_steps=100, metrics={}, metrics_history=[
        {"step": 10, "loss": 3.0}, {"step": 20, "loss": 2.5}, {"step": 25, "loss": 2.4}])
    progress = RunProgress.from_run(run)
    progress.apply([{"event": "start", "step": 20, "total": 100, "resumed_from_step": 20}, _log(25, 2.3)])

    assert [(p["step"], p["loss"]) for p in progress.history] == [(10, 3.0), (20, 2.5), (25, 2.3)]
    assert progress.metrics["resumed_from_step"] == 20


def test_long_histories_are_thinned_but_keep_the_latest_points():
    progress = RunProgress()
    progress.apply([_log(step, 1.0) for step in range(1, MAX_HISTORY + 2)])
    assert len(progress.history) <= MAX_HISTORY
    assert progress.history[-1]["step"] == MAX_HISTORY + 1
    assert progress.history[0]["step"] == 1


def test_finish_takes_the_result_summary():
    progress = RunProgress(step=29, total_steps=30, metrics={"eta_seconds": 3, "stopping": True})
    progress.finish({"steps": 30, "total_steps": 30, "final_loss": 1.5, "train_loss": 2.0, "tokens_per_second": 9.0})
    assert progress.step == 30
    assert progress.metrics == {"eta_seconds": 0, "final_loss": 1.5, "train_loss": 2.0, "tokens_per_second": 9.0}


def test_loss_chart_scales_loss_into_the_box_top_down():
    chart = loss_chart([{"step": 0, "loss": 4.0}, {"step": 5}, {"step": 10, "loss": 2.0}], width=100, height=50, pad=0)
    assert chart.points == "0.0,0.0 100.0,50.0"  # the highest loss at the top, the last step at the right
    assert (chart.first_step, chart.last_step, chart.low, chart.high, chart.last_loss) == (0, 10, 2.0, 4.0, 2.0)
    assert loss_chart([{"step": 1, "loss": 1.0}]) is None
