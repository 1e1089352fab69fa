"""The job kinds the sweep, the claim and the pages know about, each with its retry policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.conf import settings

# A heartbeat every HEARTBEAT_SECONDS; a running job silent for STALE_SECONDS lost its worker. The sweep runs
# every SWEEP_SECONDS, so a lost job is noticed at most STALE_SECONDS + SWEEP_SECONDS after its last beat.
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 60.0
SWEEP_SECONDS = 30.0


@dataclass(frozen=True)
class JobPolicy:
    max_attempts: int = 3
    stale_seconds: float = STALE_SECONDS
    heartbeat_seconds: float = HEARTBEAT_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.stale_seconds <= 60 or self.heartbeat_seconds * 2 > self.stale_seconds:
            raise ValueError("a job kind's stale threshold is at most 60 s and at least two heartbeats")

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.stale_seconds)


@dataclass(frozen=True)
class JobKind:
    """One kind of background job.

    ``name``: its key (also ``Model.job_kind``). ``model``: the concrete ``BackgroundJob``. ``task``: the dotted
    path of the Celery task that runs one job from its id, also its name (its route decides the queue). ``queue``: that queue, for the
    "is a worker listening" check. ``resume``: what running it again does, in words (pages, errors, README).
    ``on_requeue``: extra fields to write when a lost job goes back to the queue (``job -> dict``), e.g. a note.
    ``can_resume``: raises ``ValidationError`` when a person may not queue it again now (e.g. one per project).
    """

    name: str
    model: type
    task: str
    queue: str
    resume: str
    policy: JobPolicy = field(default_factory=JobPolicy)
    on_requeue: Callable[[Any], dict] | None = None
    can_resume: Callable[[Any], None] | None = None


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Called from an app's ``AppConfig.ready``; registering a kind twice replaces it (autoreload)."""
    _KINDS[kind.name] = kind
    kind.model.job_kind = kind.name
    return kind


def kinds() -> list[JobKind]:
    return [kind_named(name) for name in _KINDS]


def kind_named(name: str) -> JobKind:
    """The kind with the operator's overrides (settings.JOB_POLICIES = {name: {"max_attempts": 5, ...}})."""
    kind = _KINDS[name]
    overrides = getattr(settings, "JOB_POLICIES", {}).get(name)
    return replace(kind, policy=replace(kind.policy, **overrides)) if overrides else kind


def kind_of(job) -> JobKind:
    return kind_named(type(job).job_kind)
