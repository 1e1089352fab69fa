"""Celery tasks of curation: ids in, one service call. Queued with transaction.on_commit."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="curation.tasks.generation_run")
def generation_run(job_id: int) -> None:
    """Routed to the ``generation`` queue by name (settings.CELERY_TASK_ROUTES)."""
    from curation.services.generation import generation_job_run

    generation_job_run(job_id=job_id)


@shared_task(name="curation.tasks.import_job_run")
def import_job_run(job_id: int) -> None:
    from curation.services.imports import import_job_run as run

    run(job_id)


# Not under "curation.tasks.generation_*": the sweep goes to the default queue, where long jobs cannot hold it up.
@shared_task(name="curation.sweep_stale_jobs")
def sweep_stale_jobs() -> dict[str, int]:
    """Jobs whose worker died (no heartbeat) do not stay "running": imports, generation and evaluations fail
    with the reason (and can be resumed or re-run); training runs are requeued from their checkpoint."""
    from curation.services.generation import generation_jobs_fail_stale
    from curation.services.imports import import_jobs_fail_stale
    from evaluation.services import evaluation_runs_fail_stale

    return {
        "imports": import_jobs_fail_stale(),
        "generation": generation_jobs_fail_stale(),
        "evaluation": evaluation_runs_fail_stale(),
    }
