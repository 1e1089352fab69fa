"""Workers say they are up: one WorkerBeat row per Celery worker, written from its main process every few
seconds, so a page can tell "waiting for a free worker" from "no worker is listening on this queue".

A table rather than ``celery inspect ping`` on each page view: a broadcast waits for its timeout whenever a
worker is busy or absent, while a row is one indexed read.
"""

from __future__ import annotations

import logging
import os
import threading

from django.db import connection
from django.utils import timezone

from curation.jobs.models import WorkerBeat
from curation.jobs.selectors import WORKER_BEAT_SECONDS

logger = logging.getLogger(__name__)


def worker_beat_write(*, name: str, queues: list[str]) -> None:
    WorkerBeat.objects.update_or_create(
        name=name, defaults={"queues": sorted(queues), "pid": os.getpid(), "seen_at": timezone.now()},
        create_defaults={"queues": sorted(queues), "pid": os.getpid(), "started_at": timezone.now()},
    )


def worker_beat_remove(*, name: str) -> None:
    WorkerBeat.objects.filter(name=name, pid=os.getpid()).delete()


class WorkerBeatThread:
    """Writes the row now and every WORKER_BEAT_SECONDS until stopped; a database hiccup skips one beat."""

    def __init__(self, name: str, queues: list[str]) -> None:
        self.name, self.queues = name, queues
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="worker-beat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                try:
                    worker_beat_write(name=self.name, queues=self.queues)
                except Exception:  # noqa: BLE001 - the worker keeps working; the next beat retries
                    logger.warning("could not write the worker beat", exc_info=True)
                if self.stop_event.wait(WORKER_BEAT_SECONDS):
                    break
        finally:
            connection.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)
        try:
            worker_beat_remove(name=self.name)
        finally:
            connection.close()
