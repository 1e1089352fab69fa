"""What a project cost and what its students save: teacher tokens and API spend, training compute, and inference
cost per 1M tokens for the teacher and each student, from the speeds evaluations measured.

Compute is priced by the operator's figure for this machine (settings ``DEVICE_NAME``, ``DEVICE_COST_PER_HOUR``);
API teachers by their own price per 1M tokens (``Teacher.price_per_million_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, Sum

from curation.models import GenerationJob, Project, Teacher


@dataclass
class Line:
    label: str
    detail: str
    tokens: int | None = None
    seconds: float | None = None
    cost: float | None = None


def _compute_cost(seconds: float | None) -> float | None:
    rate = settings.DEVICE_COST_PER_HOUR
    return None if seconds is None or not rate else seconds / 3600 * rate


def _duration(row) -> float | None:
    if row.started_at and row.finished_at:
        return max(0.0, (row.finished_at - row.started_at).total_seconds())
    return None


def teacher_lines(project: Project) -> list[Line]:
    lines = []
    jobs = GenerationJob.objects.filter(project=project).select_related("teacher")
    by_teacher: dict[int, list[GenerationJob]] = {}
    for job in jobs:
        by_teacher.setdefault(job.teacher_id, []).append(job)
    for group in by_teacher.values():
        teacher = group[0].teacher
        tokens = sum(job.generated_tokens for job in group)
        seconds = sum(_duration(job) or 0 for job in group)
        if teacher.kind == Teacher.Kind.OPENAI:
            price = teacher.price_per_million_tokens
            cost = float(Decimal(tokens) / Decimal(1_000_000) * price) if price is not None else None
            detail = f"API, {price} per 1M tokens" if price is not None else "API, no price set"
        else:
            cost, detail = _compute_cost(seconds), f"local, on {settings.DEVICE_NAME}"
        lines.append(Line(teacher.name, f"{len(group)} generation job(s), {detail}", tokens, seconds, cost))
    return lines


def training_lines(project: Project) -> list[Line]:
    from training.models import TrainingRun

    lines = []
    for run in TrainingRun.objects.filter(dataset_version__project=project).select_related("dataset_version"):
        result = (run.report or {}).get("result") or {}
        # The machine is busy from the worker's claim to the end (launch and model loading included), not
        # only while steps run: that whole span is what the run cost.
        seconds = _duration(run) or result.get("wall_seconds")
        detail = f"{run.method} on v{run.dataset_version.number}, {run.get_status_display().lower()}"
        if result.get("train_seconds") is not None:
            detail += f", {result['train_seconds']:.0f} s of it in training steps"
        lines.append(Line(f"#{run.pk} {run.name or run.method}", f"{detail}, on {settings.DEVICE_NAME}",
                          result.get("tokens"), seconds, _compute_cost(seconds)))
    return lines


@dataclass
class Inference:
    label: str
    role: str
    tokens_per_second: float | None
    cost_per_million: float | None
    basis: str
    run_id: int
    hours_per_million: float | None = None
    speedup: float | None = None
    saving: float | None = None


def inference_lines(project: Project) -> list[Inference]:
    """Per model, the speed measured by the newest finished evaluation that timed it."""
    from evaluation.models import EvaluationRun

    seen, out = set(), []
    teachers = {t.pk: t for t in Teacher.objects.filter(Q(project=project) | Q(project__isnull=True))}
    for run in EvaluationRun.objects.filter(project=project, status="succeeded").order_by("-finished_at"):
        for spec in run.models_spec:
            label = spec.get("label")
            measured = (run.measurements or {}).get(label) or {}
            speed = measured.get("tokens_per_second")
            if label in seen or not speed:
                continue
            seen.add(label)
            teacher = teachers.get((spec.get("source") or {}).get("teacher_id"))
            hours = None
            if teacher is not None and teacher.kind == Teacher.Kind.OPENAI and teacher.price_per_million_tokens is not None:
                cost, basis = float(teacher.price_per_million_tokens), "the API's price"
            else:
                seconds = 1_000_000 / speed
                cost, hours = _compute_cost(seconds), seconds / 3600
                basis = f"{hours:.1f} h of {settings.DEVICE_NAME} per 1M tokens"
            out.append(Inference(label, spec.get("role", "student"), speed, cost, basis, run.pk, hours))
    return out


def project_costs(project: Project) -> dict:
    teacher, training, inference = teacher_lines(project), training_lines(project), inference_lines(project)
    teacher_speed = next((i for i in inference if i.role == "teacher"), None)
    for line in inference:
        if teacher_speed is None:
            continue
        line.speedup = line.tokens_per_second / teacher_speed.tokens_per_second
        if teacher_speed.cost_per_million and line.cost_per_million:
            line.saving = teacher_speed.cost_per_million / line.cost_per_million
        elif teacher_speed.hours_per_million and line.hours_per_million:  # same machine, no price: time is cost
            line.saving = teacher_speed.hours_per_million / line.hours_per_million
    total = [x.cost for x in teacher + training if x.cost is not None]
    return {
        "teacher": teacher, "training": training, "inference": inference,
        "generated_tokens": GenerationJob.objects.filter(project=project).aggregate(n=Sum("generated_tokens"))["n"] or 0,
        "total_cost": sum(total) if total else None, "device": settings.DEVICE_NAME,
        "rate": settings.DEVICE_COST_PER_HOUR,
    }
