"""A heartbeat for background jobs: proof of life written while long work runs, for stale-run detection."""

from __future__ import annotations

import threading

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone


class Heartbeat:
    """Stamps ``heartbeat_at`` on ``rows`` every ``every`` seconds from a thread while the block runs.

    From a thread, so one long step (loading a model, a big batch) is not mistaken for a dead worker.
    Give the rows filtered on the running status, so a finished or cancelled job is never touched.
    """

    def __init__(self, rows: QuerySet, *, every: float) -> None:
        self.rows = rows
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="job-heartbeat", daemon=True)

    def _beat(self) -> None:
        try:
            while not self.stop.wait(self.every):
                self.rows.update(heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()
