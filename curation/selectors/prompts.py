"""Prompt listings for the API: only projects the user can see, completions fetched in one query per page."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from curation.models import Completion, Prompt, Review
from curation.selectors.access import projects_visible_to


def prompts_visible_to(user) -> QuerySet[Prompt]:
    completions = Completion.objects.defer("logprobs").order_by("id")  # logprobs can be megabytes: detail only
    return (
        Prompt.objects.filter(project__in=projects_visible_to(user))
        .select_related("project")
        .prefetch_related(Prefetch("completions", queryset=completions))
    )


def prompts_with_source(prompts: QuerySet[Prompt], source: str) -> QuerySet[Prompt]:
    return prompts.filter(Exists(Completion.objects.filter(prompt=OuterRef("pk"), source=source)))


def prompts_with_edit(prompts: QuerySet[Prompt], edited: bool) -> QuerySet[Prompt]:
    has_edit = Exists(Review.objects.filter(prompt=OuterRef("pk")).exclude(edited_text=""))
    return prompts.filter(has_edit if edited else ~has_edit)


def prompts_truncated(prompts: QuerySet[Prompt], truncated: bool) -> QuerySet[Prompt]:
    cut = Exists(Completion.objects.filter(prompt=OuterRef("pk"), finish_reason=Completion.FinishReason.LENGTH))
    return prompts.filter(cut if truncated else ~cut)
