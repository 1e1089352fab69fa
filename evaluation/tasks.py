"""Celery tasks of evaluation: an id in, one service call. Routed to the ``evaluation`` queue by name."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="evaluation.tasks.evaluation_run")
def evaluation_run(run_id: int) -> None:
    from evaluation.services import evaluation_run_execute

    evaluation_run_execute(run_id=run_id)


@shared_task(name="evaluation.tasks.references_run")
def references_run(job_id: int) -> None:
    """The teacher's greedy held-out references: on the ``evaluation`` queue, before the runs that wait for them."""
    from evaluation.references import reference_set_run

    reference_set_run(job_id=job_id)
