"""An evaluation run: models (teacher, students, endpoints) against tasks, with results and samples."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from curation.models import DatasetVersion, JobStatus, Project


class EvaluationRun(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluation_runs")
    dataset_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="evaluation_runs",
        help_text="Whose held-out split becomes the curated task.",
    )
    name = models.CharField(max_length=200, blank=True)
    models_spec = models.JSONField(
        default=list, help_text="[{label, role: teacher|student, kind, path / teacher_id / training_run_id}]"
    )
    tasks = models.JSONField(default=list, help_text="Task names; 'heldout' is the curated held-out task.")
    options = models.JSONField(default=dict, blank=True, help_text="limit, num_fewshot, apply_chat_template, batch_size")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0)
    stage = models.CharField(max_length=200, blank=True)
    results = models.JSONField(default=dict, blank=True)
    measurements = models.JSONField(default=dict, blank=True)
    artifact_dir = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"evaluation run {self.pk}"
