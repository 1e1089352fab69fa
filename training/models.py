"""A training run: a frozen dataset version, a student, a method and its settings, and what happened."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from curation.models import BackgroundJob, DatasetVersion, JobStatus, Teacher


class TrainingRun(BackgroundJob):
    class Method(models.TextChoices):
        SFT = "sft", "SFT on curated responses"
        KD = "kd", "Logit distillation (local teacher; cached logits when present)"
        ONPOLICY = "onpolicy", "On-policy distillation (the student samples, the teacher scores)"
        DPO = "dpo", "DPO from rankings and edits"

    class StudentSource(models.TextChoices):
        FOLDER = "folder", "A model folder"
        DERIVE = "derive", "Derived from the teacher (keep K layers)"
        LORA = "lora", "LoRA adapters on a base"

    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="training_runs")
    name = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=10, choices=Method.choices, default=Method.SFT)
    student_source = models.CharField(max_length=10, choices=StudentSource.choices, default=StudentSource.DERIVE)
    student_path = models.CharField(max_length=500, blank=True)
    teacher = models.ForeignKey(Teacher, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    keep_layers = models.PositiveSmallIntegerField(null=True, blank=True)
    recovery_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Recovery stage: a frozen version of general teacher text, distilled on before the curated set.",
    )
    hyperparams = models.JSONField(default=dict, blank=True)
    seed = models.IntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True, help_text="Latest: loss, learning rate, tokens/s, ETA.")
    metrics_history = models.JSONField(default=list, blank=True)
    artifact_dir = models.CharField(max_length=500, blank=True)
    log_tail = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    checkpoint_step = models.PositiveIntegerField(default=0, help_text="Step of the last saved checkpoint.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def model_dir(self) -> str:
        """The trained student (safetensors + tokenizer + chat template), once the run succeeded."""
        from training.ml.config import student_model_dir

        if self.status != JobStatus.SUCCEEDED or not self.artifact_dir:
            return ""
        return str(student_model_dir(self.artifact_dir))


class LogitCache(BackgroundJob):
    """The teacher's top-k log-probabilities over a version's training export, computed once by a worker and kept
    as a versioned artifact (fp16 shards + manifest under the data dir). KD runs on the same version, teacher and
    sequence length read it instead of running the teacher (training.ml.logit_cache)."""

    job_kind = "logit-cache"

    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="logit_caches")
    teacher = models.ForeignKey(Teacher, on_delete=models.PROTECT, related_name="+")
    top_k = models.PositiveSmallIntegerField(default=32)
    max_seq_len = models.PositiveIntegerField(default=1024)
    folder = models.CharField(max_length=500, blank=True)
    progress = models.FloatField(default=0)
    examples = models.PositiveIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Hash of the shards' hashes: the cache's content.")
    train_file_sha256 = models.CharField(max_length=64, blank=True, help_text="The export it was computed for.")
    manifest = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_version", "teacher", "top_k", "max_seq_len"], name="unique_logit_cache"
            ),
        ]

    def __str__(self) -> str:
        return f"top-{self.top_k} logits of {self.teacher} on {self.dataset_version}"
