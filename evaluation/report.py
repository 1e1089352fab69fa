"""The comparison of a finished run, computed from its stored results (pure, no database).

Retention is how much of the teacher's score a student kept: student / teacher for
metrics where higher is better, teacher / student where lower is better (perplexity),
so that 100% always means "as good as the teacher" and less means worse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEADLINE = ("heldout_gen", "rougeL")
CHART_WIDTH, LABEL_WIDTH, BAR_HEIGHT, BAR_GAP, MAX_PCT = 640, 220, 14, 6, 150.0


def retention(student: float | None, teacher: float | None, higher_is_better: bool | None) -> float | None:
    if student is None or teacher is None:
        return None
    if higher_is_better is False:
        return teacher / student if student else None
    return student / teacher if teacher else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Cell:
    label: str
    value: float | None
    stderr: float | None
    retention: float | None = None


@dataclass
class MetricRow:
    task: str
    metric: str
    higher_is_better: bool | None
    teacher: Cell | None
    students: list[Cell] = field(default_factory=list)


@dataclass
class ModelRow:
    label: str
    role: str
    measurements: dict
    notes: list[str]
    size_ratio: float | None = None
    params_ratio: float | None = None
    speed_ratio: float | None = None
    latency_ratio: float | None = None


def _cell(results: dict, label: str, task: str, metric: str) -> Cell | None:
    found = results.get(label, {}).get("metrics", {}).get(task, {}).get(metric)
    return Cell(label, found["value"], found["stderr"]) if found else None


def metric_rows(results: dict, teacher: str | None, students: list[str]) -> list[MetricRow]:
    keys: dict[tuple[str, str], bool | None] = {}
    for label in ([teacher] if teacher else []) + students:
        for task, metrics in results.get(label, {}).get("metrics", {}).items():
            for metric, found in metrics.items():
                keys.setdefault((task, metric), found.get("higher_is_better"))
    rows = []
    for (task, metric), better in keys.items():
        top = _cell(results, teacher, task, metric) if teacher else None
        row = MetricRow(task, metric, better, top)
        for label in students:
            cell = _cell(results, label, task, metric) or Cell(label, None, None)
            cell.retention = retention(cell.value, top.value if top else None, better)
            row.students.append(cell)
        rows.append(row)
    return rows


def model_rows(results: dict, measurements: dict, teacher: str | None, labels: list[str]) -> list[ModelRow]:
    base = measurements.get(teacher, {}) if teacher else {}
    rows = []
    for label in labels:
        m = measurements.get(label, {})
        row = ModelRow(label, results.get(label, {}).get("role", ""), m, results.get(label, {}).get("notes", []))
        if label != teacher:
            row.size_ratio = _ratio(m.get("size_on_disk_bytes"), base.get("size_on_disk_bytes"))
            row.params_ratio = _ratio(m.get("parameter_count"), base.get("parameter_count"))
            row.speed_ratio = _ratio(m.get("tokens_per_second"), base.get("tokens_per_second"))
            row.latency_ratio = _ratio(m.get("batch_latency_s_mean"), base.get("batch_latency_s_mean"))
        rows.append(row)
    return rows


def retention_chart(rows: list[MetricRow]) -> dict:
    """Geometry of an inline SVG: one bar per student and metric, a line at 100%."""
    scale = (CHART_WIDTH - LABEL_WIDTH - 60) / MAX_PCT
    bars, y = [], 0
    for row in rows:
        for cell in row.students:
            if cell.retention is None:
                continue
            pct = 100 * cell.retention
            bars.append({
                "y": y, "text_y": y + BAR_HEIGHT - 3, "label": f"{row.task} {row.metric} · {cell.label}",
                "width": round(min(pct, MAX_PCT) * scale, 1), "pct": pct, "worse": pct < 100,
                "value_x": LABEL_WIDTH + round(min(pct, MAX_PCT) * scale, 1) + 4,
            })
            y += BAR_HEIGHT + BAR_GAP
    return {"bars": bars, "height": max(y, 1) + 16, "width": CHART_WIDTH, "label_width": LABEL_WIDTH,
            "x100": LABEL_WIDTH + round(100 * scale, 1), "axis_y": max(y, 1) + 12}


def history_points(history: list[dict]) -> dict:
    """Geometry of the runs-over-time chart: the best student's headline retention per run."""
    values = [h["best_retention"] for h in history if h["best_retention"] is not None]
    top = max([1.0, *values])
    width, height, pad = 640, 160, 24
    step = (width - 2 * pad) / max(len(history) - 1, 1)
    points = [
        {"x": round(pad + i * step, 1), "y": round(height - pad - (h["best_retention"] / top) * (height - 2 * pad), 1),
         "run": h["run"], "pct": 100 * h["best_retention"]}
        for i, h in enumerate(history) if h["best_retention"] is not None
    ]
    return {"points": points, "polyline": " ".join(f"{p['x']},{p['y']}" for p in points), "width": width,
            "height": height, "y100": round(height - pad - (1.0 / top) * (height - 2 * pad), 1)}


FIDELITY_METRICS = (("top1", "top-1 agreement", True), ("kl", "KL(teacher‖student)", False), ("ce", "cross-entropy", False))


@dataclass
class FidelityRow:
    label: str
    examples: int
    tokens: int
    values: list[dict]  # metric key, name, value, stderr, higher_is_better
    teacher_ce: float | None


def fidelity_rows(fidelity: dict, students: list[str]) -> list[FidelityRow]:
    """Teacher-forced fidelity per student, in the order the students were given."""
    rows = []
    for label in students:
        summary = (fidelity.get(label) or {}).get("summary")
        if not summary:
            continue
        values = [{"key": key, "name": name, "value": summary[key], "stderr": summary.get(f"{key}_stderr"),
                   "higher_is_better": better} for key, name, better in FIDELITY_METRICS]
        rows.append(FidelityRow(label, summary["examples"], summary["tokens"], values, summary.get("teacher_ce")))
    return rows


@dataclass
class SpeedRow:
    label: str
    threads: int | None
    points: list[dict]  # batch_size, new_tokens, latency_s, tokens_per_second, ratio (vs the teacher's)


def speed_rows(speed: dict, teacher: str | None, labels: list[str]) -> list[SpeedRow]:
    """Fixed-length speed per model; ratio = tokens/s over the teacher's at the same batch size."""
    base = {p["batch_size"]: p["tokens_per_second"] for p in (speed.get(teacher) or {}).get("points", [])}
    rows = []
    for label in labels:
        found = speed.get(label)
        if not found:
            continue
        points = [{**p, "ratio": _ratio(p["tokens_per_second"], base.get(p["batch_size"])) if label != teacher
                   else None} for p in found["points"]]
        rows.append(SpeedRow(label, found.get("threads"), points))
    return rows
