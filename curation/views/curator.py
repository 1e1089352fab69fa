"""Curator tools: the list of items whose reviewers disagree, and adjudication."""

from __future__ import annotations

from dataclasses import replace

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from curation.forms import ReviewForm
from curation.selectors.browse import browse_page, browse_queryset
from curation.selectors.items import item_get, item_reviews
from curation.services import reviews
from curation.views.projects import curator_context

TEMPLATE = "curation/disagreements.html"


@require_GET
def disagreements(request: HttpRequest, slug: str) -> HttpResponse:
    context = curator_context(request, slug)
    cursor = request.GET.get("cursor")
    page = browse_page(browse_queryset(context["project"], {"disagreement": True}),
                       cursor=int(cursor) if cursor and cursor.isdigit() else None, size=20)
    rows = [_row(context["project"], prompt.pk, request.user) for prompt in page.rows]
    return render(request, TEMPLATE, {**context, "rows": rows, "page": page})


def _answer(data: reviews.ReviewInput, answer: str, others: list) -> reviews.ReviewInput:
    """The answer picked in the form: one reviewer's (their candidate and edit) or a teacher candidate as is."""
    by_review = {f"r{r.pk}": r for r in others}
    if answer in by_review:
        chosen = by_review[answer]
        return replace(data, chosen_id=chosen.chosen_id, edited_text=chosen.edited_text, ranking=chosen.ranking or [])
    if answer.startswith("c") and answer[1:].isdigit():
        return replace(data, chosen_id=int(answer[1:]), edited_text="")
    return data


def _row(project, prompt_id: int, user) -> dict:
    item = item_get(project=project, prompt_id=prompt_id, user=user)
    return {"item": item, "reviews": item_reviews(item.prompt)}


@require_POST
def adjudicate(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """The curator's final decision on one item, saved as their adjudicating review (version-checked too)."""
    context = curator_context(request, slug)
    row = _row(context["project"], pk, request.user)
    form, error = ReviewForm(request.POST), ""
    if form.is_valid():
        try:
            data = _answer(form.to_input(), request.POST.get("answer", ""), row["reviews"])
            saved = reviews.review_submit(project=context["project"], prompt_id=pk, annotator=request.user, data=data,
                                          adjudicate=True)
            return render(request, f"{TEMPLATE}#decided", {**context, "item": row["item"], "saved": saved})
        except reviews.StaleReview:
            error = "Your adjudication of this item changed elsewhere since this page was loaded. Reload the page."
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = " ".join(str(e) for errs in form.errors.values() for e in errs)
    return render(request, f"{TEMPLATE}#row", {**context, "row": row, "error": error}, status=422)
