from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Admin modules are all imported by now (admin's ready runs first): add our action to training runs.
        from evaluation.admin import attach_training_action

        attach_training_action()

        from curation.jobs.registry import JobKind, register
        from evaluation.models import EvaluationRun, ReferenceSet

        register(JobKind(
            name="evaluation", model=EvaluationRun, task="evaluation.tasks.evaluation_run", queue="evaluation",
            resume="models already scored keep their results; only the others are evaluated",
        ))
        register(JobKind(
            name="references", model=ReferenceSet, task="evaluation.tasks.references_run", queue="evaluation",
            resume="references already generated are kept; only the missing ones are generated",
        ))
