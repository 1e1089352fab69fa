"""Reviewing: handing out items, saving decisions, edits and drafts, reverting edits.

Every save is guarded by the review's ``version`` (optimistic concurrency): the page posts the version it
was loaded with, and a save against a review that changed since (another tab, a curator's revert) raises
``StaleReview`` instead of overwriting it. The prompt row is locked for each write, so counts and status
are recomputed from the reviews under one lock and never drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from curation import rows
from curation.models import Assignment, Completion, CompletionRevision, Project, Prompt, Review
from curation.selectors.items import UNKNOWN, item_hint
from curation.selectors.queue import assignment_ttl, open_assignment, queue_candidate

Decision = Review.Decision
RECLAIM_EVERY_SECONDS = 10


class NotHeld(ValidationError):
    """A new review from someone who does not hold the item, when its overlap is already taken by others."""

    def __init__(self, required: int):
        reviews = "review" if required == 1 else "reviews"
        super().__init__({"__all__": [
            f"This item is not assigned to you and already has the {required} {reviews} it needs from others, so "
            "your review was not saved. Keep your text if you need it, then take the next item."
        ]})


class StaleReview(Exception):
    """The review changed since the page was loaded; ``current`` is what is stored now."""

    def __init__(self, current: Review | None):
        super().__init__("This item was changed elsewhere since you opened it.")
        self.current = current


@dataclass(frozen=True)
class ReviewInput:
    decision: str
    version: int
    ranking: list[int] = field(default_factory=list)
    chosen_id: int | None = None
    edited_text: str = ""
    comment: str = ""
    seconds_spent: float = 0.0


def assignment_next(*, project: Project, annotator) -> Prompt | None:
    """The item the annotator holds, or a new one taken atomically from the queue; None when nothing is left."""
    return _next(project, annotator, held=UNKNOWN)


def _next(project: Project, annotator, *, held) -> Prompt | None:
    """``held``: the annotator's open assignment in the project when the caller read it already (a save does),
    None for none, or ``UNKNOWN``."""
    reclaimed = assignments_reclaim_expired(project=project) if _reclaim_due(project) else None
    if reclaimed:
        held = UNKNOWN  # the reclaim may just have taken back the item the caller saw held
    prompt = _take(project, annotator, held)
    if prompt is None and reclaimed is None and assignments_reclaim_expired(project=project):
        prompt = _take(project, annotator, UNKNOWN)  # the queue looked empty only because of abandoned items
    return prompt


def _take(project: Project, annotator, held) -> Prompt | None:
    read_outside = held is UNKNOWN and not transaction.get_connection().in_atomic_block
    if read_outside:
        # Resuming a held item reads one row and writes nothing: no transaction (two round trips less).
        held = open_assignment(project=project, annotator=annotator)
        if held is not None:
            return _resumed(held, annotator)
    # No savepoint when nested (review_submit_and_next): nothing here is caught and retried, and each
    # savepoint is two more round trips on the annotator's critical path.
    with transaction.atomic(savepoint=False):
        if held is UNKNOWN or (read_outside and transaction.get_connection().vendor == "sqlite"):
            # SQLite serialises the hand-out with the write lock taken at BEGIN (IMMEDIATE): read again under
            # it, so two tabs of one annotator cannot take two items. PostgreSQL locks nothing for this read,
            # so a second one there would cost a query and guarantee nothing.
            held = open_assignment(project=project, annotator=annotator)
        if held is not None:
            return _resumed(held, annotator)
        prompt = queue_candidate(project=project, annotator=annotator)
        if prompt is None:
            return None
        assignment = rows.insert(Assignment(prompt=prompt, annotator=annotator))
        prompt.claimed += 1
        prompt.status = Prompt.Status.IN_REVIEW
        rows.update(prompt, ["claimed", "status", "updated_at"])
        return item_hint(prompt, user=annotator, assignment=assignment, review_id=prompt.my_review_id,
                         flagged=prompt.a_flag_id is not None, tagged=prompt.a_tag_id is not None)


def _resumed(held: Assignment, annotator) -> Prompt:
    if hasattr(held, "my_review_id"):  # read by open_assignment (not by a save): it knows the page's facts
        return item_hint(held.prompt, user=annotator, assignment=held, review_id=held.my_review_id,
                         flagged=held.a_flag_id is not None, tagged=held.a_tag_id is not None)
    return item_hint(held.prompt, user=annotator, assignment=held, review_id=UNKNOWN)


_last_reclaim: dict[int, float] = {}


def _reclaim_due(project: Project) -> bool:
    """Look for abandoned items at most every few seconds per process: the hand-out path stays one query shorter."""
    now = time.monotonic()
    if now - _last_reclaim.get(project.pk, -1e9) < RECLAIM_EVERY_SECONDS:
        return False
    _last_reclaim[project.pk] = now
    return True


def assignments_reclaim_expired(*, project: Project) -> int:
    """Put items abandoned for longer than the TTL back in the queue (the annotator's draft stays in the browser)."""
    cutoff = timezone.now() - assignment_ttl()
    stale = list(Assignment.objects.filter(prompt__project=project, touched_at__lt=cutoff).values_list("id", "prompt_id"))
    if not stale:
        return 0
    with transaction.atomic():
        prompts = (Prompt.objects.select_for_update(of=("self",)).select_related("project")
                   .filter(id__in={p for _, p in stale}).order_by("id"))
        Assignment.objects.filter(id__in=[a for a, _ in stale], touched_at__lt=cutoff).delete()
        for prompt in prompts:
            prompt_refresh(prompt)
    return len(stale)


def assignment_save_draft(*, prompt: Prompt, annotator, draft: dict) -> bool:
    """Autosave work in progress on a held item; False when the item is not held (the browser keeps the draft)."""
    return bool(
        Assignment.objects.filter(prompt=prompt, annotator=annotator).update(draft=draft, touched_at=timezone.now())
    )


def _validate(prompt: Prompt, data: ReviewInput, completions: dict[int, Completion]) -> tuple[list[int], Completion | None]:
    if data.decision not in Decision.values:
        raise ValidationError({"decision": f"Unknown decision '{data.decision}'."})
    ranking = list(dict.fromkeys(data.ranking))
    if any(cid not in completions for cid in ranking):
        raise ValidationError({"ranking": "The ranking names a candidate that is not part of this item."})
    chosen_id = data.chosen_id
    if chosen_id is not None and chosen_id not in completions:
        raise ValidationError({"chosen": "The chosen candidate is not part of this item."})
    if chosen_id is None and data.decision == Decision.APPROVE:
        if ranking:
            chosen_id = ranking[0]
        elif len(completions) == 1:
            chosen_id = next(iter(completions))
        else:
            raise ValidationError({"chosen": "Pick the best candidate (b) or rank them (1–9) before approving."})
    if data.edited_text.strip() and chosen_id is None:
        raise ValidationError({"edited_text": "An edit belongs to a chosen candidate: pick one first."})
    return ranking, completions.get(chosen_id) if chosen_id is not None else None


def review_submit_and_next(*, project: Project, prompt_id: int, annotator, data: ReviewInput) -> tuple[Review, Prompt | None]:
    """Save the review and hand out the next item in one transaction (one commit: the annotator's round trip)."""
    with transaction.atomic():
        review, held = _submit(project, prompt_id, annotator, data, adjudicate=False)
        return review, _next(project, annotator, held=held)


def review_submit(*, project: Project, prompt_id: int, annotator, data: ReviewInput, adjudicate: bool = False) -> Review:
    """Create or update ``annotator``'s review of a prompt; refuse with ``StaleReview`` if it changed meanwhile.

    Raises ``Prompt.DoesNotExist`` for a prompt outside ``project``.
    """
    with transaction.atomic():
        return _submit(project, prompt_id, annotator, data, adjudicate=adjudicate)[0]


def review_correct(*, review: Review, actor, data: ReviewInput) -> Review:
    """An operator's correction of a stored review (the admin's change form), with every rule of a save: the
    version check, a revision for a changed text (authored by the operator), and the item's counts and status
    recomputed under its lock."""
    with transaction.atomic():
        return _submit(review.prompt.project, review.prompt_id, review.annotator, data,
                       adjudicate=review.is_adjudication, author=actor)[0]


def review_check(*, prompt: Prompt, data: ReviewInput) -> None:
    """The checks a save makes of its input (decision, ranking, chosen candidate, edit), without saving."""
    _validate(prompt, data, {c.id: c for c in prompt.completions.all()})


def _submit(project: Project, prompt_id: int, annotator, data: ReviewInput, *, adjudicate: bool,
            author=None) -> tuple[Review, Assignment | None]:
    """The body of a save; the caller holds the transaction. ``author``: who made the edit, when not the reviewer.

    Returns the review and the item the annotator still holds elsewhere in the project (None for none), so
    the next hand-out needs no second look. Seven queries for a held item: the prompt's lock, its reviews,
    the assignments (the item's and the annotator's, one query), its candidates, the review's write, the
    assignment's release and the prompt's counts; everything else is worked out from those rows. They are
    the hand-written ones of ``curation.rows``: this is the request annotators wait for.
    """
    prompt = rows.prompt_locked(prompt_id=prompt_id, project_id=project.pk)
    if prompt is None:
        raise Prompt.DoesNotExist("No such item in this project.")
    prompt.project = project
    # Under the prompt's lock every review and assignment of the item is stable (each write takes that lock
    # first), so these rows are exact for the slot check and the recount below.
    reviews = rows.reviews_for_save(prompt_id=prompt.pk, annotator_id=annotator.pk)
    review = next((r for r in reviews if r.annotator_id == annotator.pk), None)
    if (review.version if review else 0) != data.version:
        raise StaleReview(review)
    assignments = rows.assignments_for_save(prompt_id=prompt.pk, annotator_id=annotator.pk)
    on_item = [a for a, _ in assignments if a.prompt_id == prompt.pk]
    holds_it = any(a.annotator_id == annotator.pk for a in on_item)
    if review is None and not adjudicate and data.decision != Decision.SKIP:
        _check_slot(prompt, reviews, on_item, holds_it=holds_it)
    completions = {c.id: c for c in rows.completions_of(prompt.pk)}
    ranking, chosen = _validate(prompt, data, completions)
    before = _effective_text(review, chosen)
    edited = data.edited_text if chosen is not None and data.edited_text != chosen.text else ""
    if not edited.strip():
        edited = ""
    review = review or Review(prompt=prompt, annotator=annotator, version=0)
    review.decision, review.ranking, review.chosen = data.decision, ranking, chosen
    review.edited_text, review.comment = edited, data.comment.strip()
    review.seconds_spent = max(0.0, min(float(data.seconds_spent), 24 * 3600.0)) + (review.seconds_spent or 0)
    review.is_adjudication = adjudicate or review.is_adjudication
    review.superseded = False
    review.version += 1
    if review._state.adding:
        rows.insert(review)
    else:
        rows.update(review)
    after = edited or (chosen.text if chosen else "")
    if chosen is not None and before is not None and before != after:
        rows.insert(CompletionRevision(
            completion=chosen, review=review, author=author or annotator, text_before=before, text_after=after
        ))
    if holds_it:
        rows.assignment_release(prompt_id=prompt.pk, annotator_id=annotator.pk)
    # The saved review was written last, so it closes the list in updated_at order as a re-read would have it.
    current = [r for r in reviews if r.annotator_id != annotator.pk and not r.superseded] + [review]
    prompt_refresh(prompt, claimed=len(on_item) - holds_it, reviews=current)
    held_elsewhere = next((a for a, project_id in assignments if a.annotator_id == annotator.pk
                           and a.prompt_id != prompt.pk and project_id == project.pk), None)
    return review, held_elsewhere


def _check_slot(prompt: Prompt, reviews: list[Review], on_item: list[Assignment], *, holds_it: bool) -> None:
    """The hand-out's overlap holds for saves too: without an assignment, a new review may only take a free slot.

    Called under the prompt's lock with the item's rows read under it, so two saves cannot both see the last
    slot free.
    """
    if holds_it:
        return
    taken = sum(1 for r in reviews if not r.superseded and r.decision != Decision.SKIP) + len(on_item)
    if taken >= prompt.project.reviews_required:
        raise NotHeld(prompt.project.reviews_required)


def _effective_text(review: Review | None, chosen: Completion | None) -> str | None:
    """The text of ``chosen`` as this review had it before the save: its edit, or the teacher's original."""
    if chosen is None:
        return None
    if review is not None and review.chosen_id == chosen.id and review.edited_text:
        return review.edited_text
    return chosen.text


def review_revert(*, revision: CompletionRevision, actor, expected_version: int) -> Review:
    """Restore the text a revision produced into its review, as a new revision (history only grows)."""
    if revision.review_id is None:
        raise ValidationError("This revision's review no longer exists; there is nothing to revert into.")
    with transaction.atomic():
        # The prompt first, as every other write does: one lock order, no deadlock with a save in flight.
        completion = revision.completion
        prompt = Prompt.objects.select_for_update(of=("self",)).select_related("project").get(pk=completion.prompt_id)
        review = Review.objects.select_related("chosen").get(pk=revision.review_id)
        if review.version != expected_version:
            raise StaleReview(review)
        current = _effective_text(review, completion) if review.chosen_id == completion.id else completion.text
        target = revision.text_after
        review.chosen = completion
        review.edited_text = "" if target == completion.text else target
        review.version += 1
        review.save(update_fields=["chosen", "edited_text", "version", "updated_at"])
        CompletionRevision.objects.create(
            completion=completion, review=review, author=actor, text_before=current, text_after=target
        )
        prompt_refresh(prompt)
        return review


def prompt_refresh(prompt: Prompt, *, claimed: int | None = None, reviews: list[Review] | None = None) -> None:
    """Recompute a locked prompt's counts and status from its reviews and assignments.

    ``claimed``: the open assignments when the caller knows them (every change to them happens under this
    prompt's lock, so a count the caller kept is exact); otherwise they are counted. ``reviews``: the item's
    current (not superseded) reviews in ``updated_at`` order, read under the same lock; otherwise they are read.

    Unanimous reviews (same decision and, for approvals, the same chosen candidate with the same edit) decide the
    item once ``reviews_required`` of them are in; anything else waits for a curator, whose adjudication is final:
    two different edits of one answer are a disagreement, never one silently kept over the other.
    """
    if reviews is None:
        decisive = list(prompt.reviews.filter(superseded=False).exclude(decision=Decision.SKIP)
                        .order_by("updated_at").values_list("decision", "chosen_id", "is_adjudication", "edited_text"))
    else:
        decisive = [(r.decision, r.chosen_id, r.is_adjudication, r.edited_text) for r in reviews
                    if not r.superseded and r.decision != Decision.SKIP]
    prompt.review_count = len(decisive)
    prompt.claimed = Assignment.objects.filter(prompt=prompt).count() if claimed is None else claimed
    prompt.needs_adjudication = False
    required = prompt.project.reviews_required
    adjudications = [decision for decision, _, is_adj, _ in decisive if is_adj]
    if adjudications:
        prompt.status = _status_of(adjudications[-1])
    elif decisive and len(decisive) >= required:
        decisions = {decision for decision, _, _, _ in decisive}
        answers = {(cid, edit) for decision, cid, _, edit in decisive if decision == Decision.APPROVE}
        if len(decisions) == 1 and len(answers) <= 1:
            prompt.status = _status_of(decisions.pop())
        else:
            prompt.status, prompt.needs_adjudication = Prompt.Status.IN_REVIEW, True
    elif decisive or prompt.claimed:
        prompt.status = Prompt.Status.IN_REVIEW
    else:
        prompt.status = Prompt.Status.PENDING
    rows.update(prompt, ["review_count", "claimed", "needs_adjudication", "status", "updated_at"])


def _status_of(decision: str) -> str:
    return Prompt.Status.APPROVED if decision == Decision.APPROVE else Prompt.Status.REJECTED
