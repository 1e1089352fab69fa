"""The shared job lifecycle against the real database: claim, beat, finish, release, cancel, resume, sweep,
for every registered kind (imports, generation, training, evaluation)."""

from __future__ import annotations

import socket
import subprocess
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from curation.jobs import services as jobs
from curation.jobs.models import WorkerBeat
from curation.jobs.registry import JobPolicy, kind_named, kinds
from curation.jobs.selectors import job_is_stale, queue_state, this_worker
from curation.models import GenerationJob, ImportJob, JobStatus, Teacher
from evaluation.models import EvaluationRun
from curation.models import DatasetVersion
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_of_each(project):
    """A fresh row of every kind, queued."""
    teacher = Teacher.objects.create(project=project, name="t", kind=Teacher.Kind.LOCAL, model_path="/nowhere")
    version = DatasetVersion.objects.create(project=project, number=1, content_hash="0" * 64)
    return {
        "import": ImportJob.objects.create(project=project, file="x.jsonl"),
        "generation": GenerationJob.objects.create(project=project, teacher=teacher),
        "training": TrainingRun.objects.create(dataset_version=version),
        "evaluation": EvaluationRun.objects.create(project=project),
    }


def _set(job, **fields):
    type(job).objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()  # a pid that existed and is gone: a killed worker's
    return proc.pid


def test_every_kind_is_registered_with_a_threshold_of_at_most_a_minute(one_of_each):
    assert {kind.name for kind in kinds()} >= set(one_of_each)
    for kind in kinds():
        assert kind.policy.stale_seconds <= 60 and kind.policy.max_attempts >= 1 and kind.resume
    with pytest.raises(ValueError, match="at most 60"):
        JobPolicy(stale_seconds=120)


def test_claim_is_one_conditional_update_and_a_second_delivery_gets_nothing(one_of_each):
    for job in one_of_each.values():
        model = type(job)
        assert jobs.job_claim(model, job.pk) is True
        assert jobs.job_claim(model, job.pk) is False
        job.refresh_from_db()
        assert (job.status, job.attempts, job.worker) == (JobStatus.RUNNING, 1, this_worker())
        assert job.started_at and job.heartbeat_at


def test_beat_writes_progress_and_reports_a_cancel_and_finish_needs_the_holder(one_of_each):
    run = one_of_each["evaluation"]
    jobs.job_claim(EvaluationRun, run.pk)
    assert jobs.job_beat(EvaluationRun, run.pk, stage="model 1") is True
    jobs.job_cancel(job=run)
    assert jobs.job_beat(EvaluationRun, run.pk, stage="model 2") is False
    assert EvaluationRun.objects.get(pk=run.pk).stage == "model 2"  # written even when cancel was asked
    _set(run, worker="elsewhere:1")  # taken over meanwhile: this process writes nothing more
    assert jobs.job_beat(EvaluationRun, run.pk, stage="late") is False
    assert jobs.job_finish(EvaluationRun, run.pk, status=JobStatus.SUCCEEDED) is False
    assert EvaluationRun.objects.get(pk=run.pk).status == JobStatus.RUNNING


def test_a_redelivered_task_takes_over_from_a_dead_local_process(one_of_each):
    job = one_of_each["generation"]
    _set(job, status=JobStatus.RUNNING, attempts=1, worker=f"{socket.gethostname()}:{_dead_pid()}",
         heartbeat_at=timezone.now())
    assert jobs.job_claim(GenerationJob, job.pk) is True
    job.refresh_from_db()
    assert job.attempts == 2 and job.worker == this_worker() and "died" in job.error


@pytest.mark.parametrize("name", ["import", "generation", "training", "evaluation"])
def test_the_sweep_requeues_lost_jobs_then_fails_them_when_attempts_run_out(one_of_each, name, monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    from django.utils.module_loading import import_string

    sent = []
    monkeypatch.setattr(import_string(kind_named(name).task), "delay", sent.append)
    limit = kind_named(name).policy.max_attempts
    job = one_of_each[name]
    silent = timezone.now() - timedelta(seconds=61)
    _set(job, status=JobStatus.RUNNING, attempts=1, worker="elsewhere:1", heartbeat_at=silent)
    alive = type(job).objects.get(pk=job.pk)
    alive.pk = None
    alive.heartbeat_at = timezone.now() - timedelta(seconds=30)
    alive.save()

    with django_capture_on_commit_callbacks(execute=True):
        report = jobs.jobs_sweep()

    assert report[name] == {JobStatus.QUEUED: [job.pk]} and sent == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.worker == "" and f"Attempt 1 of {limit}" in job.error
    assert kind_named(name).resume in job.error
    assert type(job).objects.get(pk=alive.pk).status == JobStatus.RUNNING

    _set(job, status=JobStatus.RUNNING, attempts=limit, worker=f"{socket.gethostname()}:{_dead_pid()}",
         heartbeat_at=timezone.now())
    assert jobs.jobs_sweep()[name] == {JobStatus.FAILED: [job.pk]}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "No attempts left" in job.error and job.finished_at


def test_a_lost_job_with_a_pending_cancel_ends_cancelled(one_of_each):
    run = _set(one_of_each["training"], status=JobStatus.RUNNING, attempts=1, worker="elsewhere:1",
               cancel_requested=True, heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert jobs.jobs_sweep()["training"] == {JobStatus.CANCELLED: [run.pk]}


def test_release_names_the_out_of_memory_killer(one_of_each):
    assert "out of memory" in jobs.lost_reason(-9) and "out of memory" in jobs.lost_reason(137)
    assert "signal 15" in jobs.lost_reason(-15)
    run = one_of_each["training"]
    jobs.job_claim(TrainingRun, run.pk)
    run.refresh_from_db()
    assert jobs.job_release(job=run, reason=jobs.lost_reason(-9), enqueue=False) == JobStatus.QUEUED
    run.refresh_from_db()
    assert "SIGKILL" in run.error and "out of memory" in run.error and "checkpoint" in run.error
    assert jobs.job_release(job=run, reason="again", enqueue=False) is None  # it moved on: left alone


def test_cancel_covers_queued_running_stale_and_finished(one_of_each):
    for job in one_of_each.values():
        assert jobs.job_cancel(job=job).status == JobStatus.CANCELLED
        with pytest.raises(ValidationError, match="already finished"):
            jobs.job_cancel(job=job)
    run = _set(one_of_each["evaluation"], status=JobStatus.RUNNING, worker="elsewhere:1",
               heartbeat_at=timezone.now())
    assert jobs.job_cancel(job=run).cancel_requested is True and run.status == JobStatus.RUNNING
    _set(run, heartbeat_at=timezone.now() - timedelta(minutes=2))
    assert job_is_stale(run)
    assert jobs.job_cancel(job=run).status == JobStatus.CANCELLED


def test_resume_gives_fresh_attempts_and_refuses_active_jobs(one_of_each):
    run = one_of_each["training"]
    with pytest.raises(ValidationError, match="Only a failed or cancelled training run"):
        jobs.job_resume(job=run, enqueue=False)
    _set(run, status=JobStatus.FAILED, attempts=3, error="boom", finished_at=timezone.now())
    run = jobs.job_resume(job=run, enqueue=False)
    assert (run.status, run.attempts, run.error, run.finished_at) == (JobStatus.QUEUED, 0, "", None)


def test_queue_state_says_how_long_a_job_waited_and_who_listens(one_of_each):
    job = _set(one_of_each["training"], queued_at=timezone.now() - timedelta(seconds=90))
    state = queue_state(job)
    assert state.queue == "training" and state.waited_seconds >= 90 and not state.listening
    WorkerBeat.objects.create(name="celery@a", queues=["default", "training"])
    WorkerBeat.objects.create(name="celery@b", queues=["training"], seen_at=timezone.now() - timedelta(minutes=5))
    WorkerBeat.objects.create(name="celery@c", queues=["evaluation"])
    assert queue_state(job).workers == ["celery@a"]
    assert queue_state(one_of_each["evaluation"]).workers == ["celery@c"]


def test_a_killed_process_not_yet_reaped_counts_as_dead():
    """A pool child killed with its worker lingers as a zombie until reaped; kill(pid, 0) still finds it."""
    import signal
    import time

    from curation.jobs.selectors import worker_is_dead

    child = subprocess.Popen(["sleep", "60"])
    name = f"{socket.gethostname()}:{child.pid}"
    try:
        assert not worker_is_dead(name)
        child.send_signal(signal.SIGKILL)
        time.sleep(0.5)  # dead, but not waited for: a zombie
        assert worker_is_dead(name)
    finally:
        child.kill()
        child.wait()
    assert worker_is_dead(name)


def test_the_sweep_sends_again_a_queued_job_whose_message_was_lost(one_of_each, monkeypatch, settings):
    from django.utils.module_loading import import_string

    sent = []
    monkeypatch.setattr(import_string(kind_named("import").task), "delay", sent.append)
    settings.JOB_RESEND_SECONDS = 120
    job = _set(one_of_each["import"], sent_at=timezone.now() - timedelta(minutes=5))
    assert "resent" not in jobs.jobs_sweep()["import"]  # no worker listens on its queue: nothing would take it
    WorkerBeat.objects.create(name="celery@a", queues=["default"])
    busy = ImportJob.objects.create(project=job.project, file="y.jsonl", status=JobStatus.RUNNING, worker="elsewhere:1",
                                    heartbeat_at=timezone.now())
    assert "resent" not in jobs.jobs_sweep()["import"]  # the queue's worker is busy: the job may be waiting its turn
    _set(busy, status=JobStatus.SUCCEEDED, worker="")

    assert jobs.jobs_sweep()["import"] == {"resent": [job.pk]} and sent == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.sent_at > timezone.now() - timedelta(seconds=5)
    assert jobs.jobs_sweep()["import"] == {} and sent == [job.pk]  # sent just now: not again before the interval
    # Other kinds, queued a moment ago, were left alone throughout.
    assert all(jobs.jobs_sweep()[name] == {} for name in ("generation", "training", "evaluation"))


def test_enqueue_notes_when_the_message_went(one_of_each, monkeypatch, django_capture_on_commit_callbacks):
    from django.utils.module_loading import import_string

    sent = []
    monkeypatch.setattr(import_string(kind_named("training").task), "delay", sent.append)
    run = one_of_each["training"]
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_enqueue(run)
    run.refresh_from_db()
    assert sent == [run.pk] and run.sent_at is not None
