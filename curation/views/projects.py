"""Project list and dashboard: progress, throughput, agreement, imports and dataset versions."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from curation.forms import FreezeForm, ImportForm
from curation.models import Membership
from curation.selectors.access import access_project, access_project_role, projects_visible_to
from curation.selectors.stats import agreement_summary, status_counts, throughput

TEMPLATE = "curation/project_dashboard.html"


@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    projects = projects_visible_to(request.user).annotate(prompt_count=Count("prompts"))
    return render(request, "curation/project_list.html", {"projects": projects})


@require_GET
def project_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = access_project_role(request.user, slug=slug)
    context = {
        "project": project,
        "role": role,
        "stats": status_counts(project),
        "throughput": throughput(project),
        "versions": project.dataset_versions.select_related("created_by")[:5],
        "jobs": project.import_jobs.all()[:5],
        "import_form": ImportForm(),
        "freeze_form": FreezeForm(),
    }
    return render(request, TEMPLATE, context)


@require_GET
def project_agreement(request: HttpRequest, slug: str) -> HttpResponse:
    """Loaded after the page (hx-trigger=load): the statistics take longer than the rest of the dashboard."""
    project = access_project(request.user, slug=slug)
    return render(request, f"{TEMPLATE}#agreement", {"project": project, "agreement": agreement_summary(project)})


def curator_context(request: HttpRequest, slug: str) -> dict:
    project = access_project(request.user, slug=slug, role=Membership.Role.CURATOR)
    return {"project": project, "role": Membership.Role.CURATOR}
