"""Admin for training runs (cancel, resume) and a "launch training" action on dataset versions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from curation.jobs.admin import JobAdmin
from curation.models import DatasetVersion
from training.forms import TrainingRunForm
from training.models import LogitCache, TrainingRun
from training.services import training_run_create


@admin.register(TrainingRun)
class TrainingRunAdmin(JobAdmin):
    list_display = ["id", "name", "dataset_version", "method", "student_source", "status", "step", "total_steps",
                    "attempts", "created_by", "created_at"]
    list_filter = ["status", "method", "student_source"]
    list_select_related = ["dataset_version__project", "created_by"]
    search_fields = ["name", "=dataset_version__id"]
    raw_id_fields = ["dataset_version", "teacher", "created_by"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the worker owns a run's fields; cancel and resume are the actions


@admin.register(LogitCache)
class LogitCacheAdmin(JobAdmin):
    list_display = ["id", "dataset_version", "teacher", "top_k", "status", "progress", "tokens", "size_bytes",
                    "attempts", "created_at"]
    list_filter = ["status"]
    list_select_related = ["dataset_version__project", "teacher"]
    raw_id_fields = ["dataset_version", "teacher", "created_by"]
    readonly_fields = ["sha256", "train_file_sha256", "manifest", "folder"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the worker writes it; cancel and resume are the actions


@admin.action(description="Launch training on the selected versions…")
def launch_training(modeladmin, request, queryset):
    """First a page with the launch form (one project at a time), then one run per selected version."""
    projects = {version.project_id for version in queryset}
    if len(projects) != 1:
        modeladmin.message_user(request, "Select versions of one project at a time.", messages.ERROR)
        return None
    project = queryset[0].project
    form = TrainingRunForm(project, request.POST if "apply" in request.POST else None)
    if not form.is_valid():
        context = {**modeladmin.admin_site.each_context(request), "form": form, "queryset": queryset,
                   "title": "Launch training", "opts": modeladmin.model._meta}
        return TemplateResponse(request, "training/admin_launch.html", context)
    for version in queryset:
        try:
            run = training_run_create(dataset_version=version, created_by=request.user, **form.service_kwargs())
        except ValidationError as exc:
            modeladmin.message_user(request, f"{version}: {' '.join(exc.messages)}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{version}: training run #{run.pk} queued.")
    return None


# The dataset version admin belongs to curation; the action that starts training belongs here.
_version_admin = admin.site.get_model_admin(DatasetVersion)
_version_admin.actions = [*(_version_admin.actions or []), launch_training]
