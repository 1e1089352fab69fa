"""The Django admin for evaluation runs, and the "evaluate against teacher" action on training runs."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from curation.jobs.admin import JobAdmin
from evaluation.models import EvaluationRun, EvaluationSample, ReferenceSet
from evaluation.services import training_run_evaluate


@admin.register(EvaluationRun)
class EvaluationRunAdmin(JobAdmin):
    list_display = ["id", "name", "project", "status", "progress", "report_link", "created_by", "created_at"]
    list_filter = ["status", "project"]
    search_fields = ["name"]
    raw_id_fields = ["dataset_version", "created_by"]
    progress_fields = ["progress", "stage", "results", "measurements", "artifact_dir"]

    @admin.display(description="Report")
    def report_link(self, run: EvaluationRun) -> str:
        return format_html('<a href="{}">report</a>', reverse("evaluation:run_detail", args=[run.pk]))


@admin.register(ReferenceSet)
class ReferenceSetAdmin(JobAdmin):
    list_display = ["id", "dataset_version", "teacher", "max_new_tokens", "status", "done", "total", "created_at"]
    list_filter = ["status"]
    list_select_related = ["dataset_version__project", "teacher"]
    raw_id_fields = ["dataset_version", "teacher", "created_by"]
    progress_fields = ["done", "total", "references"]


@admin.register(EvaluationSample)
class EvaluationSampleAdmin(admin.ModelAdmin):
    list_display = ["run", "model_label", "task", "doc_id", "prompt_id", "sent_back_at"]
    list_filter = ["task"]
    raw_id_fields = ["run"]
    show_full_result_count = False


@admin.action(description="Evaluate against teacher (held-out split)")
def evaluate_against_teacher(modeladmin, request, queryset) -> None:
    """One evaluation run per training run: its teacher vs its student on its dataset's held-out split."""
    for training_run in queryset.select_related("dataset_version__project"):
        try:
            run = training_run_evaluate(training_run=training_run, created_by=request.user)
        except ValidationError as exc:
            modeladmin.message_user(request, f"{training_run}: {' '.join(exc.messages)}", messages.ERROR)
        else:
            url = reverse("evaluation:run_detail", args=[run.pk])
            link = format_html('{}: <a href="{}">evaluation #{}</a> queued', training_run, url, run.pk)
            modeladmin.message_user(request, link)


def attach_training_action(site: admin.AdminSite = admin.site) -> None:
    """Put the action on the training run admin (the training app owns that admin).

    Called from ``EvaluationConfig.ready``, after every admin module was imported; if the
    training app registers no admin for its runs, a plain one is registered to carry it.
    """
    from training.models import TrainingRun

    if not site.is_registered(TrainingRun):
        site.register(TrainingRun, _PlainTrainingRunAdmin)
    model_admin = site.get_model_admin(TrainingRun)
    actions = list(model_admin.actions or [])
    if evaluate_against_teacher not in actions:
        model_admin.actions = [*actions, evaluate_against_teacher]


class _PlainTrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "method", "status", "dataset_version", "created_at"]
    list_filter = ["status", "method"]
