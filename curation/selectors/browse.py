"""Browse: filtered item lists with keyset pagination, and the same filter for bulk actions.

Pages are cut by id (``id < cursor``, newest first) so a page costs the same at item 1,000,000 as at item 1,
and no page runs a COUNT over the table; only a bulk action's confirmation counts, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from curation.models import Completion, Flag, Membership, Project, Prompt, Review, Tag
from curation.selectors.items import EVAL_REGRESSION
from curation.selectors.prompts import prompts_with_edit, prompts_with_source
from curation.selectors.search import prompts_matching_text
from curation.services.quality import AUTO_KINDS

PAGE_SIZE = 50
FILTER_KEYS = ("q", "status", "annotator", "source", "flag", "tag", "min_length", "max_length", "has_edit", "disagreement")


@dataclass
class Page:
    rows: list[Prompt]
    next_cursor: int | None


def browse_queryset(project: Project, filters: dict) -> QuerySet[Prompt]:
    """Prompts of ``project`` matching the browse filters (a BrowseForm's cleaned data)."""
    prompts = Prompt.objects.filter(project=project)
    if filters.get("q"):
        prompts = prompts_matching_text(prompts, filters["q"])
    if filters.get("status"):
        prompts = prompts.filter(status=filters["status"])
    if filters.get("annotator"):
        reviewed = Review.objects.filter(prompt=OuterRef("pk"), annotator_id=filters["annotator"], superseded=False)
        prompts = prompts.filter(Exists(reviewed))
    if filters.get("source"):
        prompts = prompts_with_source(prompts, filters["source"])
    if filters.get("flag"):
        prompts = prompts.filter(Exists(Flag.objects.filter(prompt=OuterRef("pk"), kind=filters["flag"])))
    if filters.get("tag"):
        prompts = prompts.filter(Exists(Tag.objects.filter(prompt=OuterRef("pk"), name=filters["tag"])))
    if filters.get("min_length") is not None or filters.get("max_length") is not None:
        prompts = prompts.filter(Exists(_completions_by_length(filters.get("min_length"), filters.get("max_length"))))
    if filters.get("has_edit"):
        prompts = prompts_with_edit(prompts, True)
    if filters.get("disagreement"):
        prompts = prompts.filter(needs_adjudication=True)
    return prompts


def _completions_by_length(low: int | None, high: int | None) -> QuerySet[Completion]:
    completions = Completion.objects.filter(prompt=OuterRef("pk"))
    if low is not None:
        completions = completions.filter(length__gte=low)
    if high is not None:
        completions = completions.filter(length__lte=high)
    return completions


def browse_page(prompts: QuerySet[Prompt], *, cursor: int | None, size: int = PAGE_SIZE, by_status: bool = False) -> Page:
    """Newest first. ``by_status``: the filter fixes one status, so walk prompt_queue_idx (project, status, id)
    rather than the primary key, which would step over every item of the other statuses."""
    if cursor:
        prompts = prompts.filter(id__lt=cursor)
    ordering = ("-project_id", "-status", "-id") if by_status else ("-id",)
    rows = list(
        prompts.order_by(*ordering).only("id", "text", "status", "review_count", "needs_adjudication", "updated_at")
        .prefetch_related(Prefetch("flags", to_attr="flag_list"), Prefetch("tags", to_attr="tag_list"))[: size + 1]
    )
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows=rows, next_cursor=rows[-1].id if more else None)


def active_filters(filters: dict) -> dict:
    return {key: filters[key] for key in FILTER_KEYS if filters.get(key) not in (None, "", False)}


def filter_choices(project: Project) -> dict:
    """Values for the filter menus. Sources and flag kinds need a scan, so they are cached for five minutes."""
    key = f"curation:filter-choices:{project.pk}"
    choices = cache.get(key)
    if choices is None:
        choices = {
            # order_by() drops the models' default ordering, which DISTINCT would otherwise include.
            "sources": sorted(
                Completion.objects.filter(prompt__project=project).order_by().values_list("source", flat=True).distinct()
            ),
            "flags": sorted(Flag.objects.filter(prompt__project=project).order_by().values_list("kind", flat=True).distinct()),
            "tags": sorted(
                Tag.objects.filter(prompt__project=project).order_by().values_list("name", flat=True).distinct()[:200]
            ),
        }
        cache.set(key, choices, 300)
    # Items sent back by evaluation come first (what a curator looks for), then the automatic signals.
    known = [EVAL_REGRESSION, *AUTO_KINDS]
    choices = {**choices, "flags": known + [kind for kind in choices["flags"] if kind not in known]}
    members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    return {**choices, "annotators": [(m.user_id, m.user.get_username()) for m in members]}
