"""Bulk actions on a filtered set of items: approve, reject, re-queue, tag.

From the browse page, an action on a filter is a background job (``bulk_action_job_create``): the worker goes
through the filter in id order, a chunk per transaction with its progress, so 100k+ items neither hold a
request nor a lock for minutes, and a lost worker's job resumes after its last chunk.

Each works through the ids in chunks, one transaction per chunk, so a large filter neither holds locks for
minutes nor builds one huge statement. A bulk approval or rejection is recorded as the curator's
adjudication of each item (who decided, and when), the same record a single adjudication leaves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from curation.jobs import services as jobs
from curation.models import Assignment, BulkActionJob, Completion, Flag, JobStatus, Project, Prompt, Review, Tag
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


# --- as a background job (the browse page) --------------------------------------------------------------


@transaction.atomic
def bulk_action_job_create(
    *, project: Project, actor, action: str, filters: dict, total: int, tag_name: str = ""
) -> BulkActionJob:
    """Queue ``action`` on every item of the browse ``filters`` (the form's cleaned data, JSON-safe)."""
    if action not in BulkActionJob.Action.values:
        raise ValidationError({"action": f"Unknown bulk action '{action}'."})
    if action == BulkActionJob.Action.TAG and not tag_name.strip():
        raise ValidationError({"tag_name": "Name the tag to add."})
    job = BulkActionJob.objects.create(project=project, created_by=actor, action=action, tag_name=tag_name.strip(),
                                       filters=filters, total=total)
    jobs.job_enqueue(job)
    return job


def bulk_action_job_run(*, job_id: int) -> str | None:
    return jobs.job_run(BulkActionJob, job_id, _run_bulk, select_related=("project", "created_by"))


def _run_bulk(job: BulkActionJob) -> str:
    from curation.selectors.browse import browse_queryset

    while True:
        # The filter is read again per chunk: items an earlier chunk changed may have left it, which is why
        # the walk is by id, after the last one done.
        prompts = browse_queryset(job.project, {**job.filters, "cursor": None}).filter(id__gt=job.last_id)
        ids = list(prompts.order_by("id").values_list("id", flat=True)[:CHUNK])
        if not ids:
            return JobStatus.SUCCEEDED
        with transaction.atomic():
            done = _apply(job, ids)
            job.last_id, job.done = ids[-1], job.done + done
            if not jobs.job_beat(BulkActionJob, job.pk, last_id=job.last_id, done=job.done):
                return JobStatus.CANCELLED


def _apply(job: BulkActionJob, ids: list[int]) -> int:
    if job.action == BulkActionJob.Action.TAG:
        return prompts_tag(project=job.project, prompt_ids=ids, name=job.tag_name)
    if job.action == BulkActionJob.Action.REQUEUE:
        return prompts_requeue(project=job.project, prompt_ids=ids, actor=job.created_by)
    return prompts_bulk_decide(project=job.project, prompt_ids=ids, decision=job.action, actor=job.created_by)
