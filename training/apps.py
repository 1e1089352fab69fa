from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from curation.jobs.registry import JobKind, register
        from training.models import LogitCache, TrainingRun

        register(JobKind(
            name="training", model=TrainingRun, task="training.tasks.training_run_task", queue="training",
            resume="it continues from its newest checkpoint",
        ))
        register(JobKind(
            name="logit-cache", model=LogitCache, task="training.tasks.logit_cache_task", queue="training",
            resume="shards an earlier attempt completed are kept; it continues with the next one",
        ))
