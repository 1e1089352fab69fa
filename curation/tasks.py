"""Celery tasks of curation: ids in, one service call. Queued with transaction.on_commit.

Also the lifecycle's periodic sweep, and the worker-start hook that recovers jobs a dead worker left running.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

logger = logging.getLogger(__name__)


@shared_task(name="curation.tasks.generation_run")
def generation_run(job_id: int) -> None:
    """Routed to the ``generation`` queue by name (settings.CELERY_TASK_ROUTES)."""
    from curation.services.generation import generation_job_run

    generation_job_run(job_id=job_id)


@shared_task(name="curation.tasks.generation_synthesis_run")
def generation_synthesis_run(job_id: int) -> None:
    """Magpie synthesis loads the teacher: routed with generation to the ``generation`` queue."""
    from curation.services.synthesis import synthesis_job_run

    synthesis_job_run(job_id=job_id)


@shared_task(name="curation.tasks.import_job_run")
def import_job_run(job_id: int) -> None:
    from curation.services.imports import import_job_run as run

    run(job_id)


@shared_task(name="curation.tasks.quality_flag_job_run")
def quality_flag_job_run(job_id: int) -> None:
    from curation.services.quality import quality_flag_job_run as run

    run(job_id=job_id)


@shared_task(name="curation.tasks.bulk_action_run")
def bulk_action_run(job_id: int) -> str | None:
    from curation.services.bulk import bulk_action_job_run

    return bulk_action_job_run(job_id=job_id)


@shared_task(name="curation.tasks.dataset_export_prepare")
def dataset_export_prepare(version_id: int) -> int:
    """Prepared export files of a new version, so its downloads can resume (Range)."""
    from curation.services.datasets import dataset_export_prepare as prepare

    return prepare(version_id=version_id)


# Not under "curation.tasks.generation_*": the sweep goes to the default queue, where long jobs cannot hold it up.
@shared_task(name="curation.sweep_stale_jobs")
def sweep_stale_jobs() -> dict[str, dict[str, list[int]]]:
    """Every registered kind of job whose worker died is requeued from where it was, or failed with the reason."""
    from curation.jobs.services import jobs_sweep

    return jobs_sweep()


_beat = None


@worker_ready.connect
def recover_lost_jobs(sender=None, **kwargs) -> None:
    """A worker that starts again after a crash finds the jobs its dead processes left "running", and from
    then on says which queues it listens on (``WorkerBeat``)."""
    global _beat
    from django.db import connection

    from curation.jobs.services import jobs_sweep
    from curation.jobs.workers import WorkerBeatThread

    if sender is not None:
        queues = sender.app.amqp.queues
        _beat = WorkerBeatThread(sender.hostname, sorted(queues.consume_from or queues))
        _beat.start()
    try:
        done = jobs_sweep()
        if any(done.values()):
            logger.warning("jobs recovered at worker start: %s", done)
    except Exception:  # noqa: BLE001 - a failed check must not stop the worker; the next sweep retries
        logger.exception("could not check for lost jobs")
    finally:
        connection.close()  # the main process forks pool children later: they must not share this socket


@worker_shutdown.connect
def forget_worker(sender=None, **kwargs) -> None:
    if _beat is not None:
        _beat.stop()
