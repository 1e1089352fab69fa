"""The columns every background job shares, and the table of live workers (for "is anyone listening?")."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    """Shared by every background job (imports, generation, training, evaluation, and what comes next)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def finished(cls) -> set[str]:
        return {cls.SUCCEEDED, cls.FAILED, cls.CANCELLED}


class BackgroundJob(models.Model):
    """A unit of work a Celery worker claims, runs with a heartbeat, and finishes; written only through
    ``curation.jobs.services``. A concrete model names its kind (``job_kind``) in the registry."""

    job_kind: str = ""

    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Claims by a worker; a job that keeps losing its worker stops being retried."
    )
    worker = models.CharField(
        max_length=200, blank=True, help_text="host:pid of the process running it; a dead pid is a lost job."
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(default=timezone.now, help_text="When it last went into the queue.")
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task message last went to the broker (the sweep sends a lost one again)."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return getattr(self, "name", "") or f"{self._meta.verbose_name} {self.pk}"

    @property
    def active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)


class WorkerBeat(models.Model):
    """A Celery worker that is up, the queues it consumes, and when it last said so (every few seconds)."""

    name = models.CharField(max_length=200, unique=True, help_text="The Celery node name, e.g. celery@host.")
    queues = models.JSONField(default=list)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
