"""Reads of the job lifecycle: who runs a job, whether it is lost, how long it has waited and who listens."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from curation.jobs.models import BackgroundJob, JobStatus, WorkerBeat
from curation.jobs.registry import kind_of

# A worker writes its WorkerBeat row every WORKER_BEAT_SECONDS; one silent for WORKER_GONE_AFTER is not counted.
WORKER_BEAT_SECONDS = 10.0
WORKER_GONE_AFTER = timedelta(seconds=3 * WORKER_BEAT_SECONDS)


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_is_dead(worker: str) -> bool:
    """True only when the process lived on this machine and is gone; elsewhere the heartbeat decides."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    """A killed process stays a zombie until its parent reaps it, and ``kill(pid, 0)`` still finds it: a pool
    child whose worker was killed with it lingers so under a PID 1 that reaps late (containers)."""
    try:
        stat = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()
    except OSError:
        return False  # no /proc (not Linux) or gone meanwhile: the heartbeat decides
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def job_is_stale(job: BackgroundJob) -> bool:
    """A running job whose worker stopped beating for longer than its kind allows, or whose local process is gone."""
    if job.status != JobStatus.RUNNING:
        return False
    if job.worker and worker_is_dead(job.worker):
        return True
    return job.heartbeat_at is not None and timezone.now() - job.heartbeat_at > kind_of(job).policy.stale_after


@dataclass(frozen=True)
class QueueState:
    """What a person waiting for a job needs: how long it has waited and whether anyone will pick it up."""

    queue: str
    waited_seconds: float | None  # None unless queued
    workers: list[str]  # worker names consuming the job's queue, seen recently
    stale: bool  # running, but its worker stopped beating

    @property
    def listening(self) -> bool:
        return bool(self.workers)

    def as_dict(self) -> dict:
        return {"queue": self.queue, "waited_seconds": self.waited_seconds, "workers": self.workers,
                "worker_listening": self.listening, "stale": self.stale}


def listening_workers(queue: str) -> list[str]:
    recent = WorkerBeat.objects.filter(seen_at__gte=timezone.now() - WORKER_GONE_AFTER)
    return [beat.name for beat in recent if queue in beat.queues]


def queue_state(job: BackgroundJob) -> QueueState:
    queue = kind_of(job).queue
    waited = None
    if job.status == JobStatus.QUEUED and job.queued_at:
        waited = max(0.0, (timezone.now() - job.queued_at).total_seconds())
    return QueueState(queue=queue, waited_seconds=waited, workers=listening_workers(queue), stale=job_is_stale(job))
