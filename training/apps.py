from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from curation.jobs.registry import JobKind, register
        from training.models import TrainingRun

        register(JobKind(
            name="training", model=TrainingRun, task="training.tasks.training_run_task", queue="training",
            resume="it continues from its newest checkpoint",
        ))
