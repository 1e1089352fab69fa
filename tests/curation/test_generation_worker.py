"""A generation job through a real Celery worker process with a tiny local model: progress, cancel, resume."""

from __future__ import annotations

import pytest

from curation.models import Completion, GenerationJob, JobStatus, Teacher
from curation.selectors.queue import queue_remaining
from curation.services import generation as svc
from tests.conftest import wait_for
from tests.factories import MembershipFactory, PromptFactory
from tests.tiny import save_tiny_model
from curation.selectors.access import SERVER_SHELL

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PROMPTS = 24


def job_row(job: GenerationJob) -> GenerationJob:
    return GenerationJob.objects.get(pk=job.pk)


def test_generation_job_runs_in_the_worker_and_cancel_and_resume_work(celery_worker, project, tmp_path):
    model_dir = save_tiny_model(tmp_path / "tiny-teacher")
    # One prompt (two candidates) per batch, so there are many batches to observe and to cancel between;
    # one torch thread, because a second one spinning on a busy CPU makes a tiny model crawl.
    teacher = svc.teacher_register(actor=SERVER_SHELL, name="tiny", kind=Teacher.Kind.LOCAL, model_path=str(model_dir),
                                   model_name="tiny-llama", default_params={"batch_size": 2, "threads": 1})
    PromptFactory.create_batch(PROMPTS, project=project)
    annotator = MembershipFactory(project=project).user
    assert queue_remaining(project=project, annotator=annotator) == 0

    job = svc.generation_job_create(project=project, teacher=teacher, n=2, temperature=1.0,
                                    max_new_tokens=48, seed=1)
    running = wait_for(lambda: (row := job_row(job)).status == JobStatus.RUNNING and row.done >= 2 and row,
                       timeout=120, message="progress while running")
    assert running.done < running.total == PROMPTS
    assert running.tokens_per_second > 0 and running.eta_seconds is not None

    svc.generation_job_cancel(job=running)
    cancelled = wait_for(lambda: (row := job_row(job)).status in JobStatus.finished() and row,
                         timeout=60, message="the cancel")
    assert cancelled.status == JobStatus.CANCELLED, cancelled.error
    assert 2 <= cancelled.done < PROMPTS
    answered = Completion.objects.filter(prompt__project=project).values("prompt").distinct().count()
    assert answered == cancelled.done

    svc.generation_job_resume(job=cancelled)
    finished = wait_for(lambda: (row := job_row(job)).status in JobStatus.finished() and row,
                        timeout=180, message="the resumed job")
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert finished.done == finished.total == PROMPTS - cancelled.done and finished.skipped == cancelled.done
    completions = Completion.objects.filter(prompt__project=project)
    assert completions.values("prompt").distinct().count() == PROMPTS
    # Resuming added the missing prompts only: nobody got more than n candidates.
    assert completions.count() <= 2 * PROMPTS
    assert set(completions.values_list("source", flat=True)) == {"tiny-llama"}
    assert queue_remaining(project=project, annotator=annotator) == PROMPTS
