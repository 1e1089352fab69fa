"""Magpie prompt synthesis into a project, as a background job on the shared lifecycle (curation.jobs).

The teacher samples user turns from its own chat template (curation.teachers.magpie); new prompts go in through
the import path (content dedup against the whole project, quality flags including near-duplicates), batch by
batch with the job's counts in the same transaction, so a resumed attempt continues where the last one stopped.
With `answer`, a greedy generation job for the new prompts follows: the teacher's own answers, ready to curate.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from curation.importers import Record
from curation.jobs import services as jobs
from curation.models import JobStatus, Project, Prompt, SynthesisJob, Teacher

MAX_COUNT = 100_000
BATCH = 16


@transaction.atomic
def synthesis_job_create(
    *, project: Project, teacher: Teacher, count: int, created_by=None, system_prompt: str | None = None,
    temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 64, seed: int = 0,
    keep_flagged: bool = False, answer: bool = True, enqueue: bool = True,
) -> SynthesisJob:
    if teacher.project_id not in (None, project.pk):
        raise ValidationError({"teacher": f"The teacher '{teacher.name}' belongs to another project."})
    if teacher.kind != Teacher.Kind.LOCAL:
        raise ValidationError({"teacher": "Synthesis samples from the teacher's chat template: it needs a local teacher."})
    errors = {}
    if not 1 <= count <= MAX_COUNT:
        errors["count"] = f"Ask for 1 to {MAX_COUNT} prompts."
    if not 0 < temperature <= 2 or not 0 < top_p <= 1:
        errors["temperature"] = "temperature must lie in (0, 2] and top_p in (0, 1]."
    if not 4 <= max_new_tokens <= 1024:
        errors["max_new_tokens"] = "max_new_tokens must lie between 4 and 1024."
    if errors:
        raise ValidationError(errors)
    job = SynthesisJob.objects.create(
        project=project, teacher=teacher, created_by=created_by, count=count,
        system_prompt=project.system_prompt if system_prompt is None else system_prompt, temperature=temperature,
        top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, keep_flagged=keep_flagged, answer=answer,
    )
    if enqueue:
        jobs.job_enqueue(job)
    return job


def synthesis_job_run(*, job_id: int) -> str | None:
    return jobs.job_run(SynthesisJob, job_id, _synthesize, select_related=("project", "teacher"))


def _synthesize(job: SynthesisJob) -> str:
    from curation.services.generation import teacher_client
    from curation.services.imports import prompts_add
    from curation.teachers.magpie import synthesize_prompts

    client = teacher_client(job.teacher)
    model, tokenizer = client.model, client.tokenizer
    batch_number = job.sampled // BATCH  # a resumed attempt draws new samples, not the ones already seen
    while job.created < job.count:
        existing = Prompt.objects.filter(project=job.project).values_list("text", flat=True).iterator()
        result = synthesize_prompts(
            model, tokenizer, min(BATCH, job.count - job.created), system_prompt=job.system_prompt,
            temperature=job.temperature, top_p=job.top_p, max_new_tokens=job.max_new_tokens, batch_size=BATCH,
            seed=job.seed * 1_000_003 + batch_number, existing=existing, max_attempts=BATCH,
            keep_flagged=job.keep_flagged,
        )
        batch_number += 1
        records = [Record(line=0, messages=[{"role": "user", "content": p.text}], candidates=[],
                          metadata={"source": "magpie", "synthesis_job": job.pk, "magpie_flags": p.flags})
                   for p in result.prompts]
        with transaction.atomic():
            counts, touched = prompts_add(project=job.project, records=records) if records else (None, set())
            new = counts.new_prompts if counts else 0
            ids = sorted(touched)
            alive = jobs.job_beat(
                SynthesisJob, job.pk, created=F("created") + new, sampled=F("sampled") + result.generated,
                duplicates=F("duplicates") + result.duplicates + (len(records) - new),
                flagged=F("flagged") + result.flagged, prompt_ids=job.prompt_ids + ids,
            )
            if not alive:
                transaction.set_rollback(True)
                return JobStatus.CANCELLED
        job.refresh_from_db()
        if job.sampled >= 20 * job.count:  # the teacher keeps repeating itself: stop rather than loop forever
            break
    if job.answer and job.prompt_ids and job.generation_job_id is None:
        from curation.services.generation import generation_job_create

        try:
            answers = generation_job_create(
                project=job.project, teacher=job.teacher, selection={"mode": "ids", "ids": job.prompt_ids}, n=1,
                temperature=0.0, system_prompt=job.system_prompt,
            )
        except ValidationError as error:  # e.g. another generation job is running: resume this one later
            raise jobs.JobFailed(f"{job.created} prompts added; answering them: {'; '.join(error.messages)}") from None
        jobs.job_beat(SynthesisJob, job.pk, generation_job=answers)
    return JobStatus.SUCCEEDED
