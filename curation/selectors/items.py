"""Reads for one item: what the review page, the history page and adjudication show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Max, Prefetch, prefetch_related_objects
from django.http import Http404

from curation import rows
from curation.models import Assignment, Completion, CompletionRevision, Flag, Project, Prompt, Review

EVAL_REGRESSION = "eval-regression"


@dataclass
class Item:
    prompt: Prompt
    completions: list[Completion]
    flags: list[Flag]
    tags: list[str]
    review: Review | None = None
    assignment: Assignment | None = None
    completion_flags: dict[int, list[Flag]] = field(default_factory=dict)
    posted: dict = field(default_factory=dict)
    decided_at: datetime | None = None  # the latest current approval or rejection of the item, by anyone

    @property
    def export_system_prompt(self) -> str:
        """The project's system prompt when the export will add it (the prompt has no system turn of its own),
        so annotators judge answers against the instructions the student will be trained with."""
        system = self.prompt.project.system_prompt
        if system and not any(m.get("role") == "system" for m in self.prompt.messages):
            return system
        return ""

    @property
    def version(self) -> int:
        return self.review.version if self.review else 0

    @property
    def regressions(self) -> list[Flag]:
        """Evaluation send-backs not yet answered: a decision made after the send-back clears the banner (the
        flag itself stays, so browse can still find items an evaluation once sent back)."""
        return [f for f in self.flags if f.kind == EVAL_REGRESSION
                and (self.decided_at is None or f.created_at > self.decided_at)]

    def state(self) -> dict:
        """What the page shows: the saved review, overlaid by the autosaved draft, overlaid by what was just posted."""
        review = self.review
        state = {
            "ranking": list(review.ranking) if review else [],
            "chosen": review.chosen_id if review else None,
            "edited_text": review.edited_text if review else "",
            "comment": review.comment if review else "",
        }
        if self.assignment and self.assignment.draft:
            state.update({k: v for k, v in self.assignment.draft.items() if k in state})
        state.update(self.posted)
        return state

    def cards(self) -> list[dict]:
        """Candidates in the annotator's ranking (unranked ones after, in id order), with what each card shows."""
        state = self.state()
        position = {cid: i for i, cid in enumerate(state["ranking"] or [])}
        ordered = sorted(self.completions, key=lambda c: (position.get(c.id, len(position)), c.id))
        return [
            {
                "completion": c,
                "letter": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[self.completions.index(c) % 26],
                "rank": position[c.id] + 1 if c.id in position else None,
                "chosen": c.id == state["chosen"],
                "flags": self.completion_flags.get(c.id, []),
            }
            for c in ordered
        ]


_COMPLETIONS = Prefetch("completions", queryset=Completion.objects.defer("logprobs").order_by("id"))
_FLAGS = Prefetch("flags", queryset=Flag.objects.order_by("-created_at", "id"))


UNKNOWN = object()  # for ``item_hint``: not known, ``item_get`` reads it


def item_hint(prompt: Prompt, *, user, assignment: Assignment | None, review_id, flagged: bool = True,
              tagged: bool = True) -> Prompt:
    """Note on a prompt what its caller knows of it and of ``user``'s rows for it (the hand-out read or wrote
    them), so ``item_get`` does not ask again. ``review_id``: the id of the user's review, None for none, or
    ``UNKNOWN``; ``flagged``/``tagged`` False: the prompt has no flags/tags."""
    prompt._known_for = (user.pk, assignment, review_id, flagged, tagged)
    return prompt


def item_get(*, project: Project, prompt_id: int, user, prompt: Prompt | None = None) -> Item:
    """The item with everything the review page shows, and the user's own review and assignment.

    ``prompt``: the row when the caller has it already (the queue just handed it out), one query less, and
    with ``item_hint`` the user's assignment and review known too.
    """
    assignment, review_id, flagged, tagged = UNKNOWN, UNKNOWN, True, True
    if prompt is not None and prompt.pk == prompt_id and prompt.project_id == project.pk:
        known = getattr(prompt, "_known_for", None)
        if known is not None and known[0] == user.pk:
            _, assignment, review_id, flagged, tagged = known
        completions = rows.completions_of(prompt.pk)  # hand-written: the next item of every save reads them
        related = [*([_FLAGS] if flagged else []), *(["tags"] if tagged else [])]
        if related:
            prefetch_related_objects([prompt], *related)
    else:
        prompt = Prompt.objects.filter(project=project, pk=prompt_id).prefetch_related(_COMPLETIONS, _FLAGS, "tags").first()
        completions = list(prompt.completions.all()) if prompt is not None else []
    if prompt is None:
        raise Http404("No such item in this project.")
    prompt.project = project  # already loaded: the page reads its system prompt and guidelines without a query
    flags = list(prompt.flags.all()) if flagged else []
    completion_flags: dict[int, list[Flag]] = {}
    for flag in flags:
        if flag.completion_id:
            completion_flags.setdefault(flag.completion_id, []).append(flag)
    return Item(
        prompt=prompt,
        completions=completions,
        flags=[f for f in flags if not f.completion_id],
        tags=sorted(t.name for t in prompt.tags.all()) if tagged else [],
        review=None if review_id is None else Review.objects.filter(prompt=prompt, annotator=user).first(),
        assignment=Assignment.objects.filter(prompt=prompt, annotator=user).first() if assignment is UNKNOWN else assignment,
        completion_flags=completion_flags,
        decided_at=_decided_at(prompt) if any(f.kind == EVAL_REGRESSION for f in flags) else None,
    )


def _decided_at(prompt: Prompt):
    return (
        prompt.reviews.filter(superseded=False)
        .exclude(decision=Review.Decision.SKIP)
        .aggregate(at=Max("updated_at"))["at"]
    )


def item_reviews(prompt: Prompt) -> list[Review]:
    """Everyone's current reviews of the item, for curators (adjudication and history)."""
    return list(
        prompt.reviews.filter(superseded=False).select_related("annotator", "chosen").order_by("is_adjudication", "id")
    )


def item_revisions(prompt: Prompt) -> list[CompletionRevision]:
    return list(
        CompletionRevision.objects.filter(completion__prompt=prompt)
        .select_related("author", "review__annotator", "completion")
        .order_by("created_at", "id")
    )
