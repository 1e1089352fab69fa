"""Browse items with search and filters, keyset-paginated; bulk actions on the current filter (curators)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.forms import BrowseForm, BulkForm
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
    context["done"] = _apply(context["project"], prompts, data, request.user)
    # The table below still shows the statuses from before: the page reloads it with the same filter.
    response = render(request, f"{TEMPLATE}#bulk-result", context)
    response["HX-Trigger"] = "bulk-done"
    return response


def _apply(project, prompts, data: dict, actor) -> int:
    ids = prompts.values_list("id", flat=True)
    if data["action"] == "tag":
        return bulk.prompts_tag(project=project, prompt_ids=ids, name=data["tag_name"])
    if data["action"] == "requeue":
        return bulk.prompts_requeue(project=project, prompt_ids=ids, actor=actor)
    return bulk.prompts_bulk_decide(project=project, prompt_ids=ids, decision=data["action"], actor=actor)
