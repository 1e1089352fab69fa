"""Bulk actions on a filtered set of items: approve, reject, re-queue, tag.

Each works through the ids in chunks, one transaction per chunk, so a large filter neither holds locks for
minutes nor builds one huge statement. A bulk approval or rejection is recorded as the curator's
adjudication of each item (who decided, and when), the same record a single adjudication leaves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from curation.models import Assignment, Completion, Flag, Project, Prompt, Review, Tag
from curation.services.reviews import prompt_refresh

CHUNK = 500


def _chunks(prompt_ids: Iterable[int]) -> Iterator[list[int]]:
    if isinstance(prompt_ids, QuerySet):
        prompt_ids = prompt_ids.order_by("id").values_list("id", flat=True).iterator(chunk_size=CHUNK * 4)
    chunk: list[int] = []
    for pid in prompt_ids:
        chunk.append(pid)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _locked(project: Project, ids: list[int]) -> list[Prompt]:
    return list(Prompt.objects.select_for_update(of=("self",)).select_related("project").filter(project=project, id__in=ids).order_by("id"))


def prompts_bulk_decide(*, project: Project, prompt_ids: Iterable[int], decision: str, actor) -> int:
    """Approve or reject every given item as ``actor``'s adjudication; an approval keeps the reviewers' answer."""
    if decision not in (Review.Decision.APPROVE, Review.Decision.REJECT):
        raise ValidationError({"decision": "A bulk decision is an approval or a rejection."})
    done = 0
    for ids in _chunks(prompt_ids):
        with transaction.atomic():
            prompts = _locked(project, ids)
            mine = {r.prompt_id: r for r in Review.objects.filter(prompt__in=prompts, annotator=actor)}
            approving = decision == Review.Decision.APPROVE
            answers = _latest_answers(prompts) if approving else {}
            defaults = _default_choices(prompts) if approving else {}
            for prompt in prompts:
                review = mine.get(prompt.id) or Review(prompt=prompt, annotator=actor, version=0)
                answer = answers.get(prompt.id)
                if answer is not None and not (review.pk and review.chosen_id):
                    review.chosen_id, review.edited_text, review.ranking = answer.chosen_id, answer.edited_text, answer.ranking
                elif approving and not review.chosen_id:
                    # Nobody picked a candidate: an approval without an answer would freeze into nothing.
                    review.chosen_id = defaults.get(prompt.id)
                review.decision, review.is_adjudication, review.superseded = decision, True, False
                review.comment = review.comment or "Bulk decision on a filter."
                review.version += 1
                review.save()
                prompt_refresh(prompt)
            done += len(prompts)
    return done


def _default_choices(prompts: list[Prompt]) -> dict[int, int]:
    """Per prompt, the candidate a bulk approval keeps when no reviewer chose one: the first complete
    (not length-truncated) candidate, else the first one."""
    first: dict[int, int] = {}
    complete: dict[int, int] = {}
    rows = Completion.objects.filter(prompt__in=prompts).order_by("prompt_id", "id")
    for prompt_id, completion_id, finish_reason in rows.values_list("prompt_id", "id", "finish_reason"):
        first.setdefault(prompt_id, completion_id)
        if finish_reason != Completion.FinishReason.LENGTH:
            complete.setdefault(prompt_id, completion_id)
    return {prompt_id: complete.get(prompt_id, completion_id) for prompt_id, completion_id in first.items()}


def _latest_answers(prompts: list[Prompt]) -> dict[int, Review]:
    """Per prompt, the latest current approval that chose a candidate (the answer a bulk approval keeps)."""
    answers: dict[int, Review] = {}
    approvals = Review.objects.filter(
        prompt__in=prompts, superseded=False, decision=Review.Decision.APPROVE, chosen__isnull=False
    ).order_by("updated_at", "id")
    for review in approvals:
        answers[review.prompt_id] = review
    return answers


def prompts_requeue(
    *, project: Project, prompt_ids: Iterable[int], actor=None, flag_kind: str = "", flag_detail: str = ""
) -> int:
    """Send items back to the review queue: their reviews are kept but marked superseded, so they no longer count.

    ``flag_kind``/``flag_detail`` tag why (evaluation sends ``"eval-regression"`` with the run's name).
    """
    done = 0
    for ids in _chunks(prompt_ids):
        with transaction.atomic():
            prompts = _locked(project, ids)
            Review.objects.filter(prompt__in=prompts, superseded=False).update(superseded=True)
            Assignment.objects.filter(prompt__in=prompts).delete()
            if flag_kind:
                Flag.objects.bulk_create(
                    [Flag(prompt=p, kind=flag_kind, detail=flag_detail[:500]) for p in prompts]
                )
            for prompt in prompts:
                prompt_refresh(prompt)
            done += len(prompts)
    return done


def prompts_tag(*, project: Project, prompt_ids: Iterable[int], name: str) -> int:
    name = name.strip()
    if not name:
        raise ValidationError({"tag_name": "Name the tag to add."})
    done = 0
    for ids in _chunks(prompt_ids):
        ids = list(Prompt.objects.filter(project=project, id__in=ids).values_list("id", flat=True))
        Tag.objects.bulk_create([Tag(prompt_id=pid, name=name[:60]) for pid in ids], ignore_conflicts=True)
        done += len(ids)
    return done
