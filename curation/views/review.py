"""The review workspace: the queue, one item, saving a decision, autosaving a draft."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.forms import DraftForm, ReviewForm
from curation.models import Project, Prompt
from curation.selectors.access import access_project_role
from curation.selectors.items import Item, item_get
from curation.services import reviews

TEMPLATE = "curation/review.html"


def _render(request: HttpRequest, project: Project, role: str, item: Item | None, *, status: int = 200, **extra) -> HttpResponse:
    """The whole page, or only the workspace for htmx; the URL follows the item so a reload resumes it."""
    context = {"project": project, "item": item, "role": role, **extra}
    template = f"{TEMPLATE}#workspace" if request.htmx else TEMPLATE
    response = render(request, template, context, status=status)
    if request.htmx and item is not None:
        response["HX-Push-Url"] = reverse("curation:item", args=[project.slug, item.prompt.pk])
    return response


def _item(project: Project, prompt: Prompt | None, user) -> Item | None:
    return item_get(project=project, prompt_id=prompt.pk, user=user, prompt=prompt) if prompt else None


@require_GET
def queue(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = access_project_role(request.user, slug=slug)
    prompt = reviews.assignment_next(project=project, annotator=request.user)
    return _render(request, project, role, _item(project, prompt, request.user))


@require_GET
def item(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project, role = access_project_role(request.user, slug=slug)
    return _render(request, project, role, item_get(project=project, prompt_id=pk, user=request.user))


@require_POST
def review_submit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Save the decision and answer with the next item; a refused save shows the item again with the text kept."""
    project, role = access_project_role(request.user, slug=slug)
    form = ReviewForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(form.errors)
        saved, prompt = reviews.review_submit_and_next(project=project, prompt_id=pk, annotator=request.user,
                                                       data=form.to_input())
    except Prompt.DoesNotExist as missing:
        raise Http404("No such item in this project.") from missing
    except reviews.StaleReview as stale:
        return _refused(request, project, role, pk, form, status=409, stale=True, conflict=stale.current)
    except ValidationError as error:
        return _refused(request, project, role, pk, form, status=422, errors=error.message_dict)
    return _render(request, project, role, _item(project, prompt, request.user), saved=saved)


def _refused(request, project, role, pk: int, form: ReviewForm, *, status: int, **extra) -> HttpResponse:
    current = item_get(project=project, prompt_id=pk, user=request.user)
    current.posted = form.posted_state()
    return _render(request, project, role, current, status=status, **extra)


@require_POST
def item_draft(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Autosave of work in progress; answers with the little status line only."""
    project, _ = access_project_role(request.user, slug=slug)
    form = DraftForm(request.POST)
    prompt = Prompt.objects.filter(project=project, pk=pk).only("id").first()
    if prompt is None:
        raise Http404("No such item in this project.")
    held = form.is_valid() and reviews.assignment_save_draft(prompt=prompt, annotator=request.user, draft=form.cleaned_data)
    return render(request, f"{TEMPLATE}#draft-status", {"draft_saved": held, "draft_invalid": not form.is_valid()})
