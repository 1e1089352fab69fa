"""Dashboard actions of curators: upload an import (with its progress) and freeze a dataset version."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from curation.forms import FreezeForm, ImportForm
from curation.models import ImportJob
from curation.selectors.access import access_project
from curation.services.datasets import dataset_version_freeze
from curation.services.imports import import_job_create
from curation.views.projects import TEMPLATE, curator_context


@require_POST
def import_create(request: HttpRequest, slug: str) -> HttpResponse:
    context = curator_context(request, slug)
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            data = form.cleaned_data
            import_job_create(
                project=context["project"], created_by=request.user, uploaded_file=data["file"], format=data["format"],
                skip_invalid=data["skip_invalid"], batch_input_file=data["batch_input_file"],
            )
            form = ImportForm()
        except ValidationError as error:
            form.add_error(None, error)
    jobs = context["project"].import_jobs.all()[:5]
    status = 200 if not form.errors else 422
    return render(request, f"{TEMPLATE}#imports", {**context, "import_form": form, "jobs": jobs}, status=status)


@require_GET
def import_job(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """One job's progress; the fragment keeps polling itself while the worker runs."""
    project = access_project(request.user, slug=slug)
    job = get_object_or_404(ImportJob, project=project, pk=pk)
    return render(request, f"{TEMPLATE}#import-job", {"project": project, "job": job})


@require_POST
def version_freeze(request: HttpRequest, slug: str) -> HttpResponse:
    context = curator_context(request, slug)
    form, frozen = FreezeForm(request.POST), None
    if form.is_valid():
        try:
            frozen = dataset_version_freeze(project=context["project"], created_by=request.user, **form.cleaned_data)
            form = FreezeForm()
        except ValidationError as error:
            form.add_error(None, error)
    versions = context["project"].dataset_versions.select_related("created_by")[:5]
    context.update(freeze_form=form, versions=versions, frozen=frozen)
    return render(request, f"{TEMPLATE}#versions", context, status=422 if form.errors else 200)
