"""Celery tasks of training: ids in, one service call. Queued with transaction.on_commit."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="training.tasks.training_run_task")
def training_run_task(run_id: int) -> None:
    """Routed to the ``training`` queue by name (settings.CELERY_TASK_ROUTES)."""
    from training.services import training_run_execute

    training_run_execute(run_id=run_id)


@shared_task(name="training.tasks.logit_cache_task")
def logit_cache_task(job_id: int) -> None:
    """The teacher's forward passes: on the ``training`` queue, where the machines that hold models listen."""
    from training.logit_caches import logit_cache_run

    logit_cache_run(job_id=job_id)
