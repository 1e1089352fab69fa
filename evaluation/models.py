"""An evaluation run: models (teacher, students, endpoints) against tasks, with results and samples."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from curation.models import BackgroundJob, DatasetVersion, Project


class EvaluationRun(BackgroundJob):
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
    progress = models.FloatField(default=0)
    stage = models.CharField(max_length=200, blank=True)
    results = models.JSONField(default=dict, blank=True)
    measurements = models.JSONField(default=dict, blank=True)
    fidelity = models.JSONField(
        default=dict, blank=True,
        help_text="Per student: teacher-forced KL(teacher||student), top-1 agreement, cross-entropy (with stderr) "
                  "on the held-out replies, and per example.",
    )
    speed = models.JSONField(
        default=dict, blank=True,
        help_text="Per local model: fixed-length generation latency and tokens/s at batch 1 and batch N.",
    )
    artifact_dir = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    @property
    def teacher_label(self) -> str | None:
        return next((m["label"] for m in self.models_spec if m.get("role") == "teacher"), None)

    @property
    def student_labels(self) -> list[str]:
        return [m["label"] for m in self.models_spec if m.get("role") != "teacher"]


class EvaluationSample(models.Model):
    """One document of one task as one model answered it (from lm-eval's per-sample log)."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="samples")
    model_label = models.CharField(max_length=100)
    task = models.CharField(max_length=200)
    doc_id = models.PositiveIntegerField()
    prompt_id = models.BigIntegerField(
        null=True, blank=True, help_text="The curation prompt behind a held-out item (a plain id, not a key)."
    )
    prompt = models.TextField(blank=True)
    target = models.TextField(blank=True)
    response = models.TextField(blank=True)
    metrics = models.JSONField(default=dict)
    sent_back_at = models.DateTimeField(
        null=True, blank=True, help_text="When a curator sent this item back to curation from this run."
    )

    class Meta:
        ordering = ["run", "task", "model_label", "doc_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "task", "model_label", "doc_id"], name="unique_eval_sample")
        ]


class ReferenceSet(BackgroundJob):
    """The teacher's greedy answers to a version's held-out prompts, generated once by a worker and stored, so
    that retention against them means imitation (sampled references are noisy: the demo teacher's own greedy
    output scores ROUGE-L 0.447 against its samples). Evaluation runs that asked for them wait for this job."""

    job_kind = "references"

    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="reference_sets")
    teacher = models.ForeignKey("curation.Teacher", on_delete=models.PROTECT, related_name="+")
    max_new_tokens = models.PositiveIntegerField(default=256)
    system_prompt = models.TextField(blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    references = models.JSONField(default=dict, blank=True, help_text="{row id: the teacher's greedy reply}")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["dataset_version", "teacher", "max_new_tokens"],
                                               name="unique_reference_set")]

    def __str__(self) -> str:
        return f"greedy references of {self.teacher} on {self.dataset_version}"
