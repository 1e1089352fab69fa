"""The project's cost page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from curation.selectors.access import access_project_role
from curation.selectors.costs import project_costs


@require_GET
def project_cost(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = access_project_role(request.user, slug=slug)
    return render(request, "curation/cost.html", {"project": project, "role": role, "costs": project_costs(project)})
