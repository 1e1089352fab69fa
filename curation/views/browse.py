"""Browse items with search and filters, keyset-paginated; bulk actions on the current filter (curators)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.forms import BrowseForm, BulkForm
from curation.models import BulkActionJob, JobStatus
from curation.selectors.access import access_project_role
from curation.selectors.browse import active_filters, browse_page, browse_queryset, filter_choices
from curation.services import bulk
from curation.views.projects import curator_context

TEMPLATE = "curation/browse.html"


@require_GET
def browse(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = access_project_role(request.user, slug=slug)
    form = BrowseForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    page = browse_page(browse_queryset(project, filters), cursor=filters.get("cursor"), by_status=bool(filters.get("status")))
    active = active_filters(filters)
    more = urlencode({**active, "cursor": page.next_cursor}) if page.next_cursor else ""
    # Rows link to their item by appending the id: one reverse() per page instead of two per row.
    item_base = reverse("curation:item", args=[project.slug, 0]).removesuffix("0/")
    context = {"project": project, "role": role, "form": form, "page": page, "item_base": item_base,
               "active": active, "more_query": more, "active_query": urlencode(active)}
    if request.htmx:  # a fragment: the filter menus (and the scans behind them) are not part of it
        return render(request, f"{TEMPLATE}#rows" if filters.get("cursor") else f"{TEMPLATE}#results", context)
    return render(request, TEMPLATE, {**context, "choices": filter_choices(project)})


@require_POST
def bulk_action(request: HttpRequest, slug: str) -> HttpResponse:
    """First call: the confirmation, with how many items the filter matches. Second call (confirm): do it."""
    context = curator_context(request, slug)
    filters, form = BrowseForm(request.POST), BulkForm(request.POST)
    if not (filters.is_valid() and form.is_valid()):
        return render(request, f"{TEMPLATE}#bulk-result", {**context, "errors": form.errors or filters.errors}, status=422)
    prompts = browse_queryset(context["project"], {**filters.cleaned_data, "cursor": None})
    count, data = prompts.count(), form.cleaned_data
    context.update(action=data["action"], tag_name=data["tag_name"], count=count, active=active_filters(filters.cleaned_data))
    if not data["confirm"] or data["expected"] != count:
        context["changed"] = data["confirm"] and data["expected"] != count
        return render(request, f"{TEMPLATE}#bulk-result", context)
    filters_saved = {k: v for k, v in active_filters(filters.cleaned_data).items() if k != "cursor"}
    try:
        context["job"] = bulk.bulk_action_job_create(
            project=context["project"], actor=request.user, action=data["action"], tag_name=data["tag_name"],
            filters=filters_saved, total=count,
        )
    except ValidationError as error:
        return render(request, f"{TEMPLATE}#bulk-result", {**context, "errors": error.message_dict}, status=422)
    return render(request, f"{TEMPLATE}#bulk-result", context)


@require_GET
def bulk_job(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """A bulk job's progress; the fragment polls itself while the worker runs."""
    context = curator_context(request, slug)
    job = get_object_or_404(BulkActionJob, project=context["project"], pk=pk)
    response = render(request, f"{TEMPLATE}#bulk-job", {**context, "job": job})
    if job.status == JobStatus.SUCCEEDED:
        # The table below still shows the statuses from before: the page reloads it with the same filter.
        response["HX-Trigger"] = "bulk-done"
    return response
