from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Admin modules are all imported by now (admin's ready runs first): add our action to training runs.
        from evaluation.admin import attach_training_action

        attach_training_action()
