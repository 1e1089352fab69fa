"""The review workspace: the queue, one item, saving a decision, autosaving a draft."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.forms import DraftForm, ReviewForm
from curation.models import Project
from curation.selectors.access import access_project, user_role
from curation.selectors.items import Item, item_get
from curation.services import reviews

TEMPLATE = "curation/review.html"


def _render(request: HttpRequest, project: Project, item: Item | None, *, status: int = 200, **extra) -> HttpResponse:
    """The whole page, or only the workspace for htmx; the URL follows the item so a reload resumes it."""
    context = {"project": project, "item": item, "role": user_role(request.user, project), **extra}
    template = f"{TEMPLATE}#workspace" if request.htmx else TEMPLATE
    response = render(request, template, context, status=status)
    if request.htmx and item is not None:
        response["HX-Push-Url"] = reverse("curation:item", args=[project.slug, item.prompt.pk])
    return response


@require_GET
def queue(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug=slug)
    prompt = reviews.assignment_next(project=project, annotator=request.user)
    item = item_get(project=project, prompt_id=prompt.pk, user=request.user) if prompt else None
    return _render(request, project, item)


@require_GET
def item(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project = access_project(request.user, slug=slug)
    return _render(request, project, item_get(project=project, prompt_id=pk, user=request.user))


@require_POST
def review_submit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Save the decision, then hand out the next item; a refused save shows the item again with the text kept."""
    project = access_project(request.user, slug=slug)
    current = item_get(project=project, prompt_id=pk, user=request.user)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        return _refused(request, project, current, form, status=422, errors=form.errors)
    try:
        saved = reviews.review_submit(prompt=current.prompt, annotator=request.user, data=form.to_input())
    except reviews.StaleReview as stale:
        return _refused(request, project, current, form, status=409, stale=True, conflict=stale.current)
    except ValidationError as error:
        return _refused(request, project, current, form, status=422, errors=error.message_dict)
    prompt = reviews.assignment_next(project=project, annotator=request.user)
    item = item_get(project=project, prompt_id=prompt.pk, user=request.user) if prompt else None
    return _render(request, project, item, saved=saved)


def _refused(request, project, current: Item, form: ReviewForm, *, status: int, **extra) -> HttpResponse:
    current.posted = form.posted_state()
    return _render(request, project, current, status=status, posted_decision=form.data.get("decision"), **extra)


@require_POST
def item_draft(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Autosave of work in progress; answers with the little status line only."""
    project = access_project(request.user, slug=slug)
    current = item_get(project=project, prompt_id=pk, user=request.user)
    form = DraftForm(request.POST)
    held = form.is_valid() and reviews.assignment_save_draft(
        prompt=current.prompt, annotator=request.user, draft=form.cleaned_data
    )
    context = {"project": project, "item": current, "draft_saved": held, "draft_invalid": not form.is_valid()}
    return render(request, f"{TEMPLATE}#draft-status", context)
