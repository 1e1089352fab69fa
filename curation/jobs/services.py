"""Every write of the job lifecycle: enqueue, claim, beat, finish, release (requeue or fail), cancel, resume, sweep.

Each is one conditional UPDATE, so two workers, a worker and the sweep, or a worker and a person pressing cancel
can race without a lock: whoever's UPDATE matches wins, the other sees 0 rows and backs off. A worker only ever
writes a job it holds (``status=running`` and ``worker=<its host:pid>``), so a worker that was thought dead and
comes back cannot overwrite the job's next attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

from curation.jobs.heartbeat import Heartbeat
from curation.jobs.models import BackgroundJob, JobStatus
from curation.jobs.registry import JobKind, kind_named, kind_of, kinds
from curation.jobs.selectors import job_is_stale, listening_workers, this_worker, worker_is_dead

logger = logging.getLogger(__name__)


class JobFailed(Exception):
    """The job cannot succeed (bad input, a teacher's error): it fails with this message, no traceback logged."""


class JobLost(Exception):
    """This attempt was lost, not the job (its child process was killed): it goes back to the queue."""


def job_run(model: type[BackgroundJob], pk: int, work: Callable[[BackgroundJob], str], *,
            select_related: tuple[str, ...] = (), finish_fields: Callable[[str], dict] | None = None) -> str | None:
    """Claim, beat while ``work(job)`` runs, then finish with the status it returns (succeeded or cancelled).

    ``work`` raises ``JobFailed`` for a failure it can explain, ``JobLost`` when its child process died; any
    other exception fails the job with its type and message. Returns the final status, or None when the job
    was not claimed (already taken, cancelled, or finished).
    """
    if not job_claim(model, pk):
        logger.info("%s %s is not queued any more; nothing to do", model._meta.verbose_name, pk)
        return None
    job = model.objects.select_related(*select_related).get(pk=pk)
    try:
        with job_heartbeat(model, pk):
            status, error = work(job), ""
    except JobLost as exc:
        return job_release(job=model.objects.get(pk=pk), reason=str(exc))
    except JobFailed as exc:
        status, error = JobStatus.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - the row must say what happened, whatever it was
        logger.exception("%s %s failed", model._meta.verbose_name, pk)
        status, error = JobStatus.FAILED, f"{type(exc).__name__}: {exc}"
    job_finish(model, pk, status=status, error=error, **(finish_fields(status) if finish_fields else {}))
    return status


def _rows(model: type[BackgroundJob], pk: int):
    return model.objects.filter(pk=pk)


def _held(model: type[BackgroundJob], pk: int):
    """The job, only while this process holds it."""
    return model.objects.filter(pk=pk, status=JobStatus.RUNNING, worker=this_worker())


def job_enqueue(job: BackgroundJob) -> None:
    """Send the kind's task once the current transaction commits (the worker must see the row), noting when."""
    model, pk = type(job), job.pk
    transaction.on_commit(lambda: _send(model, pk))


def _send(model: type[BackgroundJob], pk: int) -> None:
    model.objects.filter(pk=pk).update(sent_at=timezone.now())
    import_string(kind_named(model.job_kind).task).delay(pk)


def job_claim(model: type[BackgroundJob], pk: int) -> bool:
    """QUEUED -> RUNNING for this process, in one UPDATE; a redelivered task finds it claimed and does nothing.

    A job still "running" for a process of this machine that is gone (the pool child was killed and Celery
    redelivered its task) is released first, then claimed: that is how a killed child resumes at once.
    """
    now = timezone.now()
    fields = {"status": JobStatus.RUNNING, "attempts": F("attempts") + 1, "worker": this_worker(),
              "heartbeat_at": now, "started_at": Coalesce(F("started_at"), now), "finished_at": None}
    if _rows(model, pk).filter(status=JobStatus.QUEUED).update(**fields):
        return True
    job = _rows(model, pk).filter(status=JobStatus.RUNNING).first()
    if job is None or not job.worker or not worker_is_dead(job.worker):
        return False
    if job_release(job=job, reason=f"its worker process {job.worker} died", enqueue=False) != JobStatus.QUEUED:
        return False
    return bool(_rows(model, pk).filter(status=JobStatus.QUEUED).update(**fields))


@contextmanager
def job_heartbeat(model: type[BackgroundJob], pk: int) -> Iterator[None]:
    """Beat from a thread while the block runs, so one long step (a model load) is not taken for a dead worker."""
    every = kind_named(model.job_kind).policy.heartbeat_seconds
    with Heartbeat(_held(model, pk), every=every):
        yield


def job_beat(model: type[BackgroundJob], pk: int, **progress) -> bool:
    """Write progress with a heartbeat; False when cancel was asked for or the job is no longer this process's.

    One UPDATE both writes and reads the cancel flag; when it answers False the progress is still written.
    """
    progress["heartbeat_at"] = timezone.now()
    if _held(model, pk).filter(cancel_requested=False).update(**progress):
        return True
    _held(model, pk).update(**progress)
    return False


def job_finish(model: type[BackgroundJob], pk: int, *, status: str, error: str = "", **fields) -> bool:
    """The attempt's end (succeeded, failed, cancelled); ignored when the job was taken from this process."""
    now = timezone.now()
    return bool(_held(model, pk).update(status=status, error=error, worker="", finished_at=now, heartbeat_at=now,
                                        **fields))


def lost_reason(returncode: int | None) -> str:
    """Why a child process ended without an answer, naming the out-of-memory killer when the exit says so."""
    if returncode in (-9, 137):
        return "it was killed by SIGKILL (exit 137), most likely out of memory"
    if returncode is not None and returncode < 0:
        return f"it was killed by signal {-returncode}"
    return f"it exited with code {returncode}"


def job_release(*, job: BackgroundJob, reason: str, enqueue: bool = True) -> str | None:
    """A lost attempt ends: back to the queue while attempts remain, else failed with the reason.

    Guarded by the status, worker and heartbeat seen in ``job``: a job that moved on meanwhile is left alone.
    Returns the new status, or None when nothing changed. Also what a live worker calls when its child died.
    """
    kind = kind_of(job)
    rows = type(job).objects.filter(pk=job.pk, status=JobStatus.RUNNING, worker=job.worker,
                                    heartbeat_at=job.heartbeat_at)
    now, limit = timezone.now(), kind.policy.max_attempts
    what = f"Attempt {job.attempts} of {limit} stopped: {reason}"
    if job.cancel_requested:
        fields = {"status": JobStatus.CANCELLED, "finished_at": now}
    elif job.attempts < limit:
        fields = {"status": JobStatus.QUEUED, "queued_at": now, "error": f"{what}. Resuming: {kind.resume}.",
                  **(kind.on_requeue(job) if kind.on_requeue else {})}
    else:
        fields = {"status": JobStatus.FAILED, "finished_at": now,
                  "error": f"{what}. No attempts left; resume it by hand to try again ({kind.resume})."}
    with transaction.atomic():
        if not rows.update(worker="", **fields):
            return None
        logger.warning("%s job %s: %s -> %s", kind.name, job.pk, reason, fields["status"])
        if fields["status"] == JobStatus.QUEUED and enqueue:
            job_enqueue(job)
    return fields["status"]


def job_cancel(*, job: BackgroundJob) -> BackgroundJob:
    """Queued (or lost) jobs stop at once; a running one is asked to stop at its next safe point."""
    rows, now = type(job).objects.filter(pk=job.pk), timezone.now()
    stopped = rows.filter(status=JobStatus.QUEUED).update(status=JobStatus.CANCELLED, finished_at=now)
    if not stopped and job_is_stale(job):
        stopped = rows.filter(status=JobStatus.RUNNING, worker=job.worker, heartbeat_at=job.heartbeat_at).update(
            status=JobStatus.CANCELLED, finished_at=now, worker="")
    if not stopped and not rows.filter(status=JobStatus.RUNNING).update(cancel_requested=True):
        raise ValidationError(f"This {type(job)._meta.verbose_name} has already finished.")
    job.refresh_from_db()
    return job


@transaction.atomic
def job_resume(*, job: BackgroundJob, enqueue: bool = True) -> BackgroundJob:
    """A person queues a failed or cancelled job again, with fresh attempts; it continues where it stopped."""
    kind = kind_of(job)
    job.refresh_from_db()
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ValidationError(f"Only a failed or cancelled {type(job)._meta.verbose_name} can be resumed; "
                              f"this one is {job.status}.")
    if kind.can_resume:
        kind.can_resume(job)
    resumed = type(job).objects.filter(pk=job.pk, status=job.status).update(
        status=JobStatus.QUEUED, attempts=0, cancel_requested=False, error="", finished_at=None,
        queued_at=timezone.now(),
    )
    if not resumed:
        raise ValidationError("This job changed meanwhile; reload and try again.")
    if enqueue:
        job_enqueue(job)
    job.refresh_from_db()
    return job


def stale_jobs(kind: JobKind) -> list[BackgroundJob]:
    cutoff = timezone.now() - kind.policy.stale_after
    running = kind.model.objects.filter(status=JobStatus.RUNNING)
    # Silent ones from the database; the rest only when their local process is gone (one kill(pid, 0) each).
    silent = list(running.filter(heartbeat_at__lt=cutoff))
    others = running.exclude(pk__in=[job.pk for job in silent]).exclude(worker="")
    return silent + [job for job in others if worker_is_dead(job.worker)]


def jobs_sweep() -> dict[str, dict[str, list[int]]]:
    """One pass over every registered kind: each lost job is requeued from where it was, or failed, or (when a
    cancel was pending) cancelled. Run by Celery beat every SWEEP_SECONDS and when a worker starts."""
    report: dict[str, dict[str, list[int]]] = {}
    for kind in kinds():
        try:
            report[kind.name] = _sweep_kind(kind)
        except Exception:  # noqa: BLE001 - one kind's trouble must not leave the other kinds' lost jobs running
            logger.exception("sweeping %s jobs failed", kind.name)
    return report


def _sweep_kind(kind: JobKind) -> dict[str, list[int]]:
    done: dict[str, list[int]] = {}
    resent = _resend_lost_messages(kind)
    if resent:
        done["resent"] = resent
    for job in stale_jobs(kind):
        silent = timezone.now() - job.heartbeat_at if job.heartbeat_at else None
        reason = (f"its worker {job.worker} is gone" if job.worker and worker_is_dead(job.worker)
                  else f"no heartbeat for {int(silent.total_seconds()) if silent else '?'} s (worker killed, "
                       "out of memory, or machine gone)")
        status = job_release(job=job, reason=reason)
        if status:
            done.setdefault(status, []).append(job.pk)
    return done


def _resend_lost_messages(kind: JobKind) -> list[int]:
    """Send again the task of each queued job whose message must have been lost: a broker restarted without
    persistence (Redis with no AOF), a worker that died holding it unacknowledged (Redis redelivers only after
    its visibility timeout, hours), a purge. Lost means: sent more than ``JOB_RESEND_SECONDS`` ago, while a
    worker listens on its queue and nothing on that queue is running, so an idle worker would have taken it.
    Each re-send is claimed by one conditional UPDATE of ``sent_at`` (two sweepers send once); should the first
    message turn up after all, the claim makes the second delivery a no-op."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_RESEND_SECONDS)
    waiting = list(kind.model.objects.filter(status=JobStatus.QUEUED).filter(
        Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True, queued_at__lt=cutoff)).values_list("pk", "sent_at"))
    if not waiting or not listening_workers(kind.queue):
        return []
    if any(other.model.objects.filter(status=JobStatus.RUNNING).exists() for other in kinds() if other.queue == kind.queue):
        return []  # a worker is busy on this queue: the job may just be waiting its turn
    resent = []
    for pk, sent_at in waiting:
        if kind.model.objects.filter(pk=pk, status=JobStatus.QUEUED, sent_at=sent_at).update(sent_at=timezone.now()):
            logger.warning("%s job %s: queued and not taken for over %s s with the queue idle; sending it again",
                           kind.name, pk, settings.JOB_RESEND_SECONDS)
            import_string(kind.task).delay(pk)
            resent.append(pk)
    return resent
