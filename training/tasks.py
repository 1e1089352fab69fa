"""Celery tasks of training: ids in, one service call. Queued with transaction.on_commit."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task(name="training.tasks.training_run_task")
def training_run_task(run_id: int) -> None:
    """Routed to the ``training`` queue by name (settings.CELERY_TASK_ROUTES)."""
    from training.services import training_run_execute

    training_run_execute(run_id=run_id)


# Not under "training.tasks.*": the check goes to the default queue, where a long run cannot hold it up.
@shared_task(name="training.check_stale_runs")
def check_stale_runs() -> dict[str, list[int]]:
    from training.services import training_runs_recover

    return training_runs_recover()


@worker_ready.connect
def recover_lost_runs(sender=None, **kwargs) -> None:
    """A worker that starts again after a crash finds the runs its dead processes left "running"."""
    from django.db import connection

    from training.services import training_runs_recover

    try:
        done = training_runs_recover()
        if any(done.values()):
            logger.warning("training runs recovered at worker start: %s", done)
    except Exception:  # noqa: BLE001 - a failed check must not stop the worker; the next check retries
        logger.exception("could not check for lost training runs")
    finally:
        connection.close()  # the main process forks pool children later: they must not share this socket
