from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from curation.jobs.registry import JobKind, register
        from curation.models import BulkActionJob, GenerationJob, ImportJob, QualityFlagJob, SynthesisJob

        register(JobKind(
            name="import", model=ImportJob, task="curation.tasks.import_job_run", queue="default",
            resume="it continues after the last committed batch, and rows already stored are never written twice",
            can_resume=lambda job: _import_can_resume(job),
        ))
        register(JobKind(
            name="generation", model=GenerationJob, task="curation.tasks.generation_run", queue="generation",
            resume="prompts that already have their candidates from this teacher are skipped",
            on_requeue=lambda job: {"eta_seconds": None, "tokens_per_second": 0},
            can_resume=lambda job: _generation_can_resume(job),
        ))
        register(JobKind(
            name="quality-flags", model=QualityFlagJob, task="curation.tasks.quality_flag_job_run", queue="default",
            resume="prompts flagged by earlier attempts lost their marks; it flags the marked ones left",
        ))
        register(JobKind(
            name="bulk-action", model=BulkActionJob, task="curation.tasks.bulk_action_run", queue="default",
            resume="it continues after the last item done (items are done in id order, a chunk per transaction)",
        ))
        register(JobKind(
            name="synthesis", model=SynthesisJob, task="curation.tasks.generation_synthesis_run", queue="generation",
            resume="prompts already added are kept (and skipped as duplicates); it samples until the count is reached",
        ))


def _import_can_resume(job) -> None:
    from django.core.exceptions import ValidationError

    if not job.file:  # an upload is deleted once its import is over (README, "Security")
        raise ValidationError("This import's file is no longer kept on the server: upload it again "
                              "(rows already stored are not duplicated).")


def _generation_can_resume(job) -> None:
    from curation.services.generation import check_no_active_job

    check_no_active_job(job.project)
