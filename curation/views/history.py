"""Item history: every edit with its author and time, a diff between any two revisions, revert."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from curation.forms import RevertForm
from curation.models import CompletionRevision, Membership
from curation.selectors.access import access_project, access_project_role
from curation.selectors.items import item_get, item_reviews, item_revisions
from curation.services import reviews

TEMPLATE = "curation/history.html"


def _letter(index: int) -> str:
    """Candidates are A, B, C... as on the review page (after Z: AA, AB...)."""
    return _letter(index // 26 - 1) + chr(65 + index % 26) if index >= 26 else chr(65 + index)


def _labelled(item, revisions=None, reviews=()) -> list:
    """Name things as the annotator saw them: candidates by letter, revisions by their number within the item."""
    letters = {c.pk: _letter(i) for i, c in enumerate(item.completions)}
    for c in item.completions:
        c.letter = letters[c.pk]
    revisions = item_revisions(item.prompt) if revisions is None else revisions
    for number, revision in enumerate(revisions, start=1):
        revision.number, revision.letter = number, letters.get(revision.completion_id, "?")
    for review in reviews:
        review.chosen_letter = letters.get(review.chosen_id)
    return revisions


def _versions(item) -> dict[str, tuple[str, str]]:
    """Every text the history can compare: each candidate's original and each revision's result."""
    revisions = _labelled(item)
    texts = {f"o{c.pk}": (f"Original of candidate {c.letter}", c.text) for c in item.completions}
    for revision in revisions:
        texts[f"r{revision.pk}"] = (f"Revision {revision.number} (candidate {revision.letter})", revision.text_after)
    return texts


@require_GET
def item_history(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project, role = access_project_role(request.user, slug=slug)
    item = item_get(project=project, prompt_id=pk, user=request.user)
    reviews = item_reviews(item.prompt)
    revisions = _labelled(item, item_revisions(item.prompt), reviews)
    context = {"project": project, "role": role, "item": item, "revisions": revisions, "reviews": reviews}
    if revisions:  # open on the latest edit against the teacher's original
        last = revisions[-1]
        context.update(a=(f"Original of candidate {last.letter}", last.completion.text),
                       b=(f"Revision {last.number} (candidate {last.letter})", last.text_after),
                       a_completion=last.completion_id)
    return render(request, TEMPLATE, context)


@require_GET
def item_diff(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project = access_project(request.user, slug=slug)
    texts = _versions(item_get(project=project, prompt_id=pk, user=request.user))
    a, b = texts.get(request.GET.get("a", "")), texts.get(request.GET.get("b", ""))
    return render(request, f"{TEMPLATE}#diff", {"a": a, "b": b})


@require_POST
def revision_revert(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Restore a revision's text into its review; only its own annotator or a curator may."""
    project, role = access_project_role(request.user, slug=slug)
    revision = get_object_or_404(CompletionRevision.objects.select_related("review", "completion__prompt"),
                                 pk=pk, completion__prompt__project=project)
    owner = revision.review.annotator_id if revision.review else None
    if owner != request.user.pk and role != Membership.Role.CURATOR:
        raise PermissionDenied("Only the author of this review or a curator can revert it.")
    form = RevertForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("The page did not say which version it saw; reload it.")
        reviews.review_revert(revision=revision, actor=request.user, expected_version=form.cleaned_data["version"])
    except reviews.StaleReview:
        return _history_error(request, project, role, revision, "That review changed since this page was loaded: nothing was reverted. Reload to see the latest history.")
    except ValidationError as error:
        return _history_error(request, project, role, revision, " ".join(error.messages))
    return redirect("curation:item_history", project.slug, revision.completion.prompt_id)


def _history_error(request, project, role: str, revision, message: str) -> HttpResponse:
    item = item_get(project=project, prompt_id=revision.completion.prompt_id, user=request.user)
    context = {"project": project, "role": role, "item": item,
               "revisions": item_revisions(item.prompt), "reviews": item_reviews(item.prompt), "error": message}
    return render(request, TEMPLATE, context, status=409)
