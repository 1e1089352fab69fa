"""Training pages: launch from a dataset version, the run list, and a run page with live progress."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from curation.models import JobStatus, Membership
from curation.selectors.access import access_project, user_role
from training.charts import loss_chart
from training.downloads import zip_folder
from training.forms import TrainingRunForm
from training.models import TrainingRun
from training.logit_caches import logit_cache_create
from training.selectors import (
    access_dataset_version,
    access_training_run,
    cacheable_teachers,
    default_teacher,
    training_runs_visible_to,
)
from training.services import training_run_cancel, training_run_create, training_run_resume

CURATOR = Membership.Role.CURATOR


@require_http_methods(["GET", "POST"])
def version_train(request: HttpRequest, pk: int) -> HttpResponse:
    """The launch form of one dataset version, with the runs already trained on it."""
    version = access_dataset_version(request.user, pk=pk, role=CURATOR)
    form = TrainingRunForm(version.project, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = training_run_create(dataset_version=version, created_by=request.user, **form.service_kwargs())
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            url = reverse("training:run_detail", args=[run.pk])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    context = {"version": version, "project": version.project, "role": CURATOR, "form": form,
               "runs": version.training_runs.select_related("created_by")[:20], "caches": _caches(version),
               "cache_teachers": cacheable_teachers(version.project)}
    template = "training/launch.html#launch-form" if request.htmx else "training/launch.html"
    return render(request, template, context, status=422 if form.errors else 200)


def _caches(version):
    return version.logit_caches.select_related("teacher").order_by("-id")


@require_POST
def version_cache_logits(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Cache teacher logits" button: queue the cache (once per version, teacher and k)."""
    version = access_dataset_version(request.user, pk=pk, role=CURATOR)
    error, status = "", 200
    teacher = default_teacher(version.project)
    if request.POST.get("teacher", "").isdigit():
        teacher = next((t for t in cacheable_teachers(version.project) if t.pk == int(request.POST["teacher"])), None)
    try:
        top_k = int(request.POST.get("top_k") or 32)
        if teacher is None:
            raise ValidationError("Choose a local teacher saved as a model folder, or an API teacher naming its "
                                  "tokenizer.")
        logit_cache_create(dataset_version=version, teacher=teacher, top_k=top_k, created_by=request.user)
    except (ValueError, ValidationError) as exc:
        error, status = "; ".join(getattr(exc, "messages", [str(exc)])), 422
    context = {"version": version, "project": version.project, "caches": _caches(version), "cache_error": error,
               "form": TrainingRunForm(version.project), "cache_teachers": cacheable_teachers(version.project)}
    if request.htmx:
        return render(request, "training/launch.html#logit-caches", context, status=status)
    return redirect("training:version_train", pk=version.pk)


@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    project = access_project(request.user, slug=request.GET["project"]) if request.GET.get("project") else None
    runs = training_runs_visible_to(request.user, project)
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(request, "training/run_list.html", {"page": page, "project": project})


def _run_context(request: HttpRequest, run: TrainingRun) -> dict:
    project = run.dataset_version.project
    return {"run": run, "project": project, "role": user_role(request.user, project),
            "chart": loss_chart(run.metrics_history)}


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = access_training_run(request.user, pk=pk)
    template = "training/run_detail.html#live" if request.htmx else "training/run_detail.html"
    return render(request, template, _run_context(request, run))


@require_POST
def run_evaluate(request: HttpRequest, pk: int) -> HttpResponse:
    """"Evaluate against the teacher": the student and its teacher on the version's held-out split."""
    from curation.selectors.generation import teachers_for_project
    from evaluation.services import evaluation_run_create

    run = access_training_run(request.user, pk=pk, role=CURATOR)
    project = run.dataset_version.project
    teacher = run.teacher or teachers_for_project(project).first()
    models = ([{"teacher_id": teacher.pk}] if teacher else []) + [{"training_run_id": run.pk}]
    try:
        evaluation = evaluation_run_create(
            project=project, created_by=request.user, models=models, tasks=["heldout"],
            dataset_version=run.dataset_version, name=f"{run.name or f'run {run.pk}'} vs {teacher or 'no teacher'}",
        )
    except ValidationError as error:
        return _act_error(request, run, " ".join(error.messages))
    url = reverse("evaluation:run_detail", args=[evaluation.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
def run_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The exported student (safetensors, tokenizer, chat template) as one zip, streamed as it is written."""
    run = access_training_run(request.user, pk=pk, role=CURATOR)
    folder = Path(run.model_dir)  # the one rule (training.ml.config.student_model_dir); "" unless it succeeded
    if not run.model_dir or not (folder / "config.json").is_file():
        raise Http404("This run has no exported model.")
    name = f"{slugify(run.name) or 'student'}-run{run.pk}"
    response = StreamingHttpResponse(zip_folder(folder, name), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, training_run_cancel)


@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, training_run_resume)


def _act(request: HttpRequest, pk: int, service) -> HttpResponse:
    run = access_training_run(request.user, pk=pk, role=CURATOR)
    error, status = "", 200
    try:
        run = service(run=run)
    except ValidationError as exc:
        error, status = " ".join(exc.messages), 422
    if not request.htmx:
        return redirect("training:run_detail", pk=run.pk)
    context = {**_run_context(request, run), "action_error": error}
    return render(request, "training/run_detail.html#live", context, status=status)


def _act_error(request: HttpRequest, run: TrainingRun, error: str) -> HttpResponse:
    if not request.htmx:
        messages.error(request, error)
        return redirect("training:run_detail", pk=run.pk)
    context = {**_run_context(request, run), "action_error": error}
    return render(request, "training/run_detail.html#live", context, status=422)
