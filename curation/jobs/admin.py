"""One admin base for every kind of job: lifecycle fields are read-only, cancel and resume go through services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from curation.jobs import services as jobs

JOB_READONLY = ["status", "attempts", "worker", "heartbeat_at", "cancel_requested", "error", "created_at",
                "queued_at", "sent_at", "started_at", "finished_at"]


class JobAdmin(admin.ModelAdmin):
    """Jobs start through a service door (a page, the API, a command, an admin action), never "Add"; the worker
    owns their progress, so a subclass lists its own progress fields in ``progress_fields``."""

    progress_fields: list[str] = []
    actions = ["cancel_jobs", "resume_jobs"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), *JOB_READONLY, *self.progress_fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request, queryset) -> None:
        self._each(request, queryset, jobs.job_cancel)

    @admin.action(description="Resume the selected jobs where they stopped")
    def resume_jobs(self, request, queryset) -> None:
        self._each(request, queryset, jobs.job_resume)

    def _each(self, request, queryset, service) -> None:
        for job in queryset:
            try:
                job = service(job=job)
            except ValidationError as exc:
                self.message_user(request, f"{job._meta.verbose_name} #{job.pk}: {' '.join(exc.messages)}",
                                  messages.ERROR)
            else:
                self.message_user(request, f"{job._meta.verbose_name} #{job.pk}: {job.get_status_display().lower()}")
