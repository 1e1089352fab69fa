"""Reads of the evaluation app: who may see which run, the comparison, the regressions, the history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from curation.models import JobStatus, Membership, Project
from curation.selectors.access import access_in_project, projects_visible_to
from evaluation import report
from evaluation.models import EvaluationRun, EvaluationSample

GEN_TASK = "heldout_gen"
SORTS = {"gap": "largest gap first", "student": "lowest student score first", "item": "held-out order"}


def runs_visible_to(user, project: Project | None = None) -> QuerySet[EvaluationRun]:
    runs = EvaluationRun.objects.filter(project__in=projects_visible_to(user))
    if project is not None:
        runs = runs.filter(project=project)
    return runs.select_related("project", "dataset_version", "created_by")


def access_run(user, *, pk: int, role: str = Membership.Role.ANNOTATOR) -> EvaluationRun:
    """The run if the user may act on it with ``role``; 404 for outsiders, 403 for too low a role."""
    runs = EvaluationRun.objects.select_related("project", "dataset_version", "created_by")
    return access_in_project(user, runs, pk=pk, project_of=lambda run: run.project, role=role, what="evaluation run")


@dataclass
class Comparison:
    teacher: str | None
    students: list[str]
    metrics: list[report.MetricRow]
    models: list[report.ModelRow]
    chart: dict
    fidelity: list[report.FidelityRow]
    speed: list[report.SpeedRow]


def run_comparison(run: EvaluationRun) -> Comparison:
    labels = [m["label"] for m in run.models_spec if m["label"] in run.results]
    teacher = run.teacher_label if run.teacher_label in run.results else None
    students = [label for label in labels if label != teacher]
    rows = report.metric_rows(run.results, teacher, students)
    models = report.model_rows(run.results, run.measurements, teacher, labels)
    all_labels = [m["label"] for m in run.models_spec]
    return Comparison(
        teacher, students, rows, models, report.retention_chart(rows),
        report.fidelity_rows(run.fidelity, [label for label in all_labels if label != run.teacher_label]),
        report.speed_rows(run.speed, run.teacher_label, all_labels),
    )


def sample_metrics(run: EvaluationRun) -> dict[str, list[str]]:
    """Per task, the metrics a per-example comparison can rank by."""
    teacher = run.results.get(run.teacher_label or "", {})
    return {task: sorted(metrics) for task, metrics in teacher.get("metrics", {}).items()}


@dataclass
class Regression:
    doc_id: int
    prompt_id: int | None
    prompt: str
    reference: str
    teacher_response: str
    student_response: str
    teacher_value: float
    student_value: float
    gap: float
    sent_back_at: datetime | None


def regressions(run: EvaluationRun, *, student: str, task: str = GEN_TASK, metric: str = "rougeL",
                sort: str = "gap") -> list[Regression]:
    """Held-out items where ``student`` scores worse than the teacher on ``metric``."""
    teacher = run.teacher_label
    if teacher is None or student not in run.student_labels:
        return []
    found = run.results.get(teacher, {}).get("metrics", {}).get(task, {}).get(metric, {})
    higher_is_better = found.get("higher_is_better", True) is not False
    rows = EvaluationSample.objects.filter(run=run, model_label__in=[teacher, student])
    scored = {(s.model_label, s.doc_id): s for s in rows.filter(task=task)}
    texts = {(s.model_label, s.doc_id): s for s in rows.filter(task=GEN_TASK)} if task != GEN_TASK else scored
    items = []
    for (label, doc_id), mine in scored.items():
        theirs = scored.get((teacher, doc_id))
        if label != student or theirs is None:
            continue
        t, s = theirs.metrics.get(metric), mine.metrics.get(metric)
        if t is None or s is None:
            continue
        gap = (t - s) if higher_is_better else (s - t)
        if gap <= 0:
            continue
        t_text, s_text = texts.get((teacher, doc_id)), texts.get((student, doc_id))
        items.append(Regression(
            doc_id=doc_id, prompt_id=mine.prompt_id, prompt=mine.prompt, reference=mine.target,
            teacher_response=t_text.response if t_text else "", student_response=s_text.response if s_text else "",
            teacher_value=t, student_value=s, gap=gap, sent_back_at=mine.sent_back_at,
        ))
    keys = {"gap": lambda r: (-r.gap, r.doc_id), "item": lambda r: r.doc_id,
            "student": lambda r: ((r.student_value if higher_is_better else -r.student_value), r.doc_id)}
    return sorted(items, key=keys.get(sort, keys["gap"]))


def project_history(project: Project) -> list[dict]:
    """Finished runs of a project, oldest first, with the headline metric per student (did v3 beat v2?)."""
    task, metric = report.HEADLINE
    history = []
    runs = project.evaluation_runs.filter(status=JobStatus.SUCCEEDED).select_related("dataset_version")
    for run in runs.order_by("created_at", "id"):
        teacher = run.teacher_label
        top = run.results.get(teacher or "", {}).get("metrics", {}).get(task, {}).get(metric)
        students = []
        for label in run.student_labels:
            mine = run.results.get(label, {}).get("metrics", {}).get(task, {}).get(metric)
            value = mine["value"] if mine else None
            students.append({"label": label, "value": value,
                             "retention": report.retention(value, top["value"] if top else None, True)})
        kept = [s["retention"] for s in students if s["retention"] is not None]
        history.append({"run": run, "teacher_value": top["value"] if top else None, "students": students,
                        "best_retention": max(kept) if kept else None})
    return history


def run_eta_seconds(run: EvaluationRun) -> float | None:
    """Time left, from the time spent and the fraction done (models run one after another at similar speed)."""
    if run.status != JobStatus.RUNNING or not run.started_at or not run.progress or run.progress <= 0.02:
        return None
    elapsed = (timezone.now() - run.started_at).total_seconds()
    return max(0.0, elapsed / run.progress * (1 - run.progress))


def run_log_tail(run: EvaluationRun, *, lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """The end of the newest model's log (each model runs in its own process, logging to models/<model>/log.txt)."""
    from pathlib import Path

    if not run.artifact_dir:
        return ""
    logs = sorted(Path(run.artifact_dir).glob("models/*/log.txt"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return ""
    with open(logs[-1], "rb") as handle:
        handle.seek(max(0, logs[-1].stat().st_size - max_bytes))
        text = handle.read().decode("utf-8", errors="replace")
    # tqdm redraws a bar with carriage returns: keep the last state of each line.
    tail = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")[-lines:]]
    return f"{logs[-1].parent.name}/log.txt\n" + "\n".join(tail)
