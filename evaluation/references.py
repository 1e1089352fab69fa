"""Greedy teacher references for the held-out task: a background job on the shared lifecycle (curation.jobs).

An evaluation run created with ``options["references"] = "teacher_greedy"`` gets (or starts) the reference set of
its version and teacher; it is queued when the references are complete, by this job's last step.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from curation.jobs import services as jobs
from curation.models import DatasetVersion, JobStatus, Teacher
from evaluation.models import EvaluationRun, ReferenceSet

TEACHER_GREEDY = "teacher_greedy"
BATCH = 8


def reference_set_for(*, dataset_version: DatasetVersion, teacher: Teacher, max_new_tokens: int, created_by=None,
                      enqueue: bool = True) -> ReferenceSet:
    """The stored set, or a new job to make it (failed or cancelled ones are queued again)."""
    if teacher.kind != Teacher.Kind.LOCAL:
        raise ValidationError({"options": "Greedy references need a local teacher (its own model, greedy decoding)."})
    key = {"dataset_version": dataset_version, "teacher": teacher, "max_new_tokens": max_new_tokens}
    found = ReferenceSet.objects.filter(**key).first()
    if found is not None:
        if found.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            return jobs.job_resume(job=found, enqueue=enqueue)
        return found
    try:
        with transaction.atomic():
            refs = ReferenceSet.objects.create(**key, created_by=created_by, total=dataset_version.heldout_count,
                                               system_prompt=dataset_version.project.system_prompt)
    except IntegrityError:
        return ReferenceSet.objects.get(**key)
    if enqueue:
        jobs.job_enqueue(refs)
    return refs


def reference_set_run(*, job_id: int) -> str | None:
    return jobs.job_run(ReferenceSet, job_id, _generate, select_related=("dataset_version__project", "teacher"))


def _heldout_rows(version: DatasetVersion) -> list[dict]:
    from curation.services.datasets import dataset_export_lines

    return [json.loads(line) for line in dataset_export_lines(version=version, format="sft", split="heldout")]


def _generate(refs: ReferenceSet) -> str:
    from curation.services.generation import teacher_client
    from curation.teachers.base import GenerationParams

    rows = [row for row in _heldout_rows(refs.dataset_version) if str(row["id"]) not in refs.references]
    client = teacher_client(refs.teacher)
    params = GenerationParams(temperature=0.0, max_new_tokens=refs.max_new_tokens, system_prompt=refs.system_prompt)
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        # The conversation without the curated reply: the teacher answers exactly what the student is asked.
        prompts = [row["messages"][:-1] for row in chunk]
        # NUL: PostgreSQL's jsonb cannot hold it, and no reference means it.
        answers = {str(chunk[r.index]["id"]): r.candidates[0].text.replace("\x00", "")
                   for r in client.generate(prompts, params)}
        refs.references.update(answers)
        if not jobs.job_beat(ReferenceSet, refs.pk, references=refs.references, done=len(refs.references)):
            return JobStatus.CANCELLED
    waiting = EvaluationRun.objects.filter(status=JobStatus.QUEUED, options__reference_set=refs.pk)
    for run in waiting:  # the runs that were waiting for these references may start now
        jobs.job_enqueue(run)
    return JobStatus.SUCCEEDED


def write_greedy_heldout(refs: ReferenceSet, out: Path) -> Path:
    """The held-out export with every reply replaced by the teacher's greedy one."""
    rows = _heldout_rows(refs.dataset_version)
    missing = [row["id"] for row in rows if str(row["id"]) not in refs.references]
    if refs.status != JobStatus.SUCCEEDED or missing:
        raise jobs.JobFailed(f"The greedy references #{refs.pk} are not complete ({len(missing)} missing).")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for row in rows:
            reply = {"role": "assistant", "content": refs.references[str(row["id"])]}
            handle.write(json.dumps({**row, "messages": [*row["messages"][:-1], reply]}, ensure_ascii=False) + "\n")
    return out
