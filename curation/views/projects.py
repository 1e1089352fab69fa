"""Project list and dashboard."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from curation.models import Prompt
from curation.selectors.access import access_project, projects_visible_to, user_role


def project_list(request: HttpRequest) -> HttpResponse:
    projects = projects_visible_to(request.user).annotate(prompt_count=Count("prompts"))
    return render(request, "curation/project_list.html", {"projects": projects})


def project_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug=slug)
    counts = dict(
        Prompt.objects.filter(project=project).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    status_counts = [(label, counts.get(value, 0)) for value, label in Prompt.Status.choices]
    context = {
        "project": project,
        "role": user_role(request.user, project),
        "status_counts": status_counts,
        "total": sum(counts.values()),
        "versions": project.dataset_versions.all()[:5],
    }
    return render(request, "curation/project_dashboard.html", context)
