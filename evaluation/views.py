"""Evaluation pages: a project's runs over time, one run's comparison, and its per-example regressions."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.models import Membership
from curation.selectors.access import access_project, user_role
from curation.jobs.selectors import queue_state
from evaluation import report, selectors, services
from evaluation.forms import RunForm, SendBackForm
from evaluation.models import EvaluationSample

CURATOR = Membership.Role.CURATOR


def _list_context(request: HttpRequest, project, form: RunForm | None = None) -> dict:
    role = user_role(request.user, project)
    history = selectors.project_history(project)
    return {
        "project": project, "role": role, "history": history, "history_chart": report.history_points(history),
        "runs": selectors.runs_visible_to(request.user, project)[:50],
        "form": form or (RunForm(project=project) if role == CURATOR else None),
    }


@require_GET
def run_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug=slug)
    return render(request, "evaluation/run_list.html", _list_context(request, project))


@require_POST
def run_create(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug=slug, role=CURATOR)
    form = RunForm(request.POST, project=project)
    if form.is_valid():
        try:
            run = services.evaluation_run_create(project=project, created_by=request.user, **form.service_kwargs())
            return redirect("evaluation:run_detail", pk=run.pk)
        except ValidationError as exc:
            form.add_error(None, exc.messages)  # the service names fields (models, tasks) the form lacks
    return render(request, "evaluation/run_list.html", _list_context(request, project, form), status=400)


def _detail_context(request: HttpRequest, pk: int) -> dict:
    run = selectors.access_run(request.user, pk=pk)
    return {"run": run, "project": run.project, "role": user_role(request.user, run.project),
            "queue": queue_state(run), "comparison": selectors.run_comparison(run),
            "eta_seconds": selectors.run_eta_seconds(run), "log_tail": selectors.run_log_tail(run)}


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    context = _detail_context(request, pk)
    if request.htmx:
        response = render(request, "evaluation/run_detail.html#status", context)
        if not context["run"].active:
            response["HX-Refresh"] = "true"  # the run ended while polling: reload to show its results
        return response
    return render(request, "evaluation/run_detail.html", context)


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.evaluation_run_cancel)


@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a failed or cancelled run again: the models already scored keep their results."""
    return _act(request, pk, services.evaluation_run_resume)


def _act(request: HttpRequest, pk: int, service) -> HttpResponse:
    run = selectors.access_run(request.user, pk=pk, role=CURATOR)
    try:
        service(run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("evaluation:run_detail", pk=run.pk)


def _examples_context(request: HttpRequest, pk: int, params) -> dict:
    run = selectors.access_run(request.user, pk=pk)
    students = run.student_labels
    choices = selectors.sample_metrics(run)
    student = params.get("student") if params.get("student") in students else (students[0] if students else "")
    task = params.get("task") if params.get("task") in choices else selectors.GEN_TASK
    metric = params.get("metric") if params.get("metric") in choices.get(task, []) else (
        "rougeL" if "rougeL" in choices.get(task, []) else next(iter(choices.get(task, [])), ""))
    sort = params.get("sort") if params.get("sort") in selectors.SORTS else "gap"
    items = selectors.regressions(run, student=student, task=task, metric=metric, sort=sort) if student else []
    return {"run": run, "project": run.project, "role": user_role(request.user, run.project), "items": items,
            "students": students, "student": student, "task": task, "metric": metric, "sort": sort,
            "metric_choices": choices, "sorts": selectors.SORTS}


@require_GET
def run_examples(request: HttpRequest, pk: int) -> HttpResponse:
    context = _examples_context(request, pk, request.GET)
    if request.htmx:
        return render(request, "evaluation/run_examples.html#table", context)
    return render(request, "evaluation/run_examples.html", context)


@require_POST
def run_send_back(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.access_run(request.user, pk=pk, role=CURATOR)
    doc_ids = list(EvaluationSample.objects.filter(run=run).values_list("doc_id", flat=True).distinct())
    form = SendBackForm(request.POST, doc_ids=doc_ids)
    if not form.is_valid():
        messages.error(request, "Select at least one item to send back.")
    else:
        try:
            count = services.evaluation_items_send_back(
                run=run, doc_ids=form.cleaned_data["doc_ids"], actor=request.user,
                student_label=form.cleaned_data["student"],
            )
            messages.success(request, f"{count} item(s) went back to the review queue, flagged with this run.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    # Back to the same view of the examples (same student, metric and order).
    keep = {k: request.POST[k] for k in ("student", "task", "metric", "sort") if request.POST.get(k)}
    return redirect(f"{reverse('evaluation:run_examples', args=[run.pk])}?{urlencode(keep)}")
