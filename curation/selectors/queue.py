"""Which item an annotator gets next.

The review queue hands out prompts that still need reviews, honouring the project's overlap
(``reviews_required``): a prompt is offered while ``review_count + claimed`` (decisive reviews plus open
assignments) is below it, and never to someone who already reviewed it.

Concurrency: on PostgreSQL the candidate row is taken with ``SELECT ... FOR UPDATE SKIP LOCKED``, so two
annotators asking at the same moment get different rows instead of queueing on one lock; and because the
overlap test reads only columns of that row, PostgreSQL re-checks it on the newest row version once the lock
is held (READ COMMITTED's EvalPlanQual), so a stale snapshot cannot over-assign. SQLite has no row locks:
there the ``IMMEDIATE`` transaction mode (settings) takes the database write lock at BEGIN, which serialises
the whole hand-out. Django drops ``FOR UPDATE`` on SQLite, so one query serves both.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import F, OuterRef, QuerySet, Subquery

from curation import rows
from curation.models import Assignment, Completion, Flag, Project, Prompt, Review, Tag


def assignment_ttl() -> timedelta:
    """An item nobody touched for this long goes back to the queue (its annotator can still save it)."""
    return timedelta(seconds=getattr(settings, "CURATION_ASSIGNMENT_TTL_SECONDS", 3600))


def open_assignment(*, project: Project, annotator) -> Assignment | None:
    """The item this annotator holds already: reloading the queue resumes it instead of taking another."""
    return (
        Assignment.objects.filter(annotator=annotator, prompt__project=project)
        .select_related("prompt")
        .annotate(**page_facts(annotator, "prompt_id"))
        .order_by("id")
        .first()
    )


def page_facts(annotator, prompt_ref: str) -> dict:
    """What the review page would otherwise ask in queries of its own, read with the handed-out row: the
    annotator's review of it (superseded or not), and whether it has any flag or tag. Nearly every item handed
    out has no review and no tags, and most no flag, so the page skips those queries. Scalar subqueries, as
    in ``_open_prompts``: in the select list each is an index probe for the one row returned (an EXISTS here
    may be planned as a hash of the whole flag table)."""
    prompt = OuterRef(prompt_ref)
    return {
        "my_review_id": Subquery(Review.objects.filter(prompt=prompt, annotator=annotator).values("id")[:1]),
        "a_flag_id": Subquery(Flag.objects.filter(prompt=prompt).order_by().values("id")[:1]),
        "a_tag_id": Subquery(Tag.objects.filter(prompt=prompt).order_by().values("id")[:1]),
    }


def _open_prompts(project: Project, annotator) -> QuerySet[Prompt]:
    # Scalar subqueries rather than EXISTS on purpose: PostgreSQL turns EXISTS into merge joins that read the
    # completions (and this annotator's reviews) from the first prompt up to the queue's front, a cost that
    # grows with every item reviewed. A scalar subquery stays a per-row index probe, the same cost at the
    # millionth item as at the first.
    mine = Review.objects.filter(prompt=OuterRef("pk"), annotator=annotator, superseded=False).values("id")[:1]
    candidate = Completion.objects.filter(prompt=OuterRef("pk")).order_by().values("id")[:1]
    return (
        Prompt.objects.filter(project=project)
        .alias(load=F("review_count") + F("claimed"), candidate=Subquery(candidate), mine=Subquery(mine))
        .filter(load__lt=project.reviews_required, candidate__isnull=False, mine__isnull=True)
    )


def queue_candidate(*, project: Project, annotator) -> Prompt | None:
    """The next prompt for ``annotator``, locked. Call inside ``transaction.atomic()``.

    With overlap above one, prompts other annotators started come first, so items reach their quota of
    reviews (and a decision) instead of everyone starting new ones.
    """
    statuses = [Prompt.Status.PENDING]
    if project.reviews_required > 1:
        statuses.insert(0, Prompt.Status.IN_REVIEW)
    for status in statuses:
        # ``_open_prompts`` in hand-written SQL (curation.rows): this is on every save's critical path.
        prompt = rows.queue_candidate(project_id=project.pk, annotator_id=annotator.pk, status=status,
                                      reviews_required=project.reviews_required)
        if prompt is not None:
            return prompt
    return None


def queue_remaining(*, project: Project, annotator) -> int:
    """Roughly how many items are left for this annotator (shown as a hint; capped so it stays cheap)."""
    ids = _open_prompts(project, annotator).filter(
        status__in=[Prompt.Status.PENDING, Prompt.Status.IN_REVIEW]
    ).values("id")[:1000]
    return Prompt.objects.filter(id__in=ids).count()
