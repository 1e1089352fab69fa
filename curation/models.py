"""Curation data: projects and their members, prompts with teacher completions, reviews and edits,
import jobs, teachers and generation jobs, and immutable dataset versions."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from curation.jobs.models import BackgroundJob, JobStatus, WorkerBeat  # noqa: F401 - one import path for all apps


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators beside every item.")
    system_prompt = models.TextField(blank=True, help_text="Used when a prompt has no system turn of its own.")
    candidates_per_prompt = models.PositiveSmallIntegerField(default=2)
    reviews_required = models.PositiveSmallIntegerField(
        default=1, help_text="How many annotators review each prompt (overlap)."
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        CURATOR = "curator", "Curator"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="unique_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Prompt(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    # No index of its own: the (project, content_hash) unique index serves lookups by project.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts", db_index=False)
    messages = models.JSONField(help_text="Chat turns: [{role, content}], without the answer to curate.")
    text = models.TextField(blank=True, help_text="The last user turn, denormalised for search and display.")
    external_id = models.CharField(max_length=255, blank=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    review_count = models.PositiveSmallIntegerField(default=0, help_text="Decisive (non-skip) reviews so far.")
    claimed = models.PositiveSmallIntegerField(
        default=0, help_text="Open assignments: handed out by the queue, not yet reviewed (overlap accounting)."
    )
    needs_adjudication = models.BooleanField(
        default=False, help_text="Enough reviews came in and they disagree: a curator must decide."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "content_hash"], name="unique_prompt_hash")]
        indexes = [
            models.Index(fields=["project", "status", "id"], name="prompt_queue_idx"),
            models.Index(
                fields=["project", "id"], name="prompt_disagreement_idx", condition=models.Q(needs_adjudication=True)
            ),
        ]

    def __str__(self) -> str:
        return self.text[:80] or f"prompt {self.pk}"


class Completion(models.Model):
    class FinishReason(models.TextChoices):
        STOP = "stop", "Stop"
        LENGTH = "length", "Length (truncated)"
        UNKNOWN = "unknown", "Unknown"

    # No index of its own: the (prompt, text_hash) unique index serves lookups by prompt.
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="completions", db_index=False)
    text = models.TextField()
    text_hash = models.CharField(max_length=64)
    source = models.CharField(max_length=200, default="import", db_index=True)
    params = models.JSONField(default=dict, blank=True)
    finish_reason = models.CharField(max_length=10, choices=FinishReason.choices, default=FinishReason.UNKNOWN)
    logprobs = models.JSONField(null=True, blank=True, help_text="Per-token logprobs from a local teacher.")
    length = models.PositiveIntegerField(default=0, help_text="Characters, for filters.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["prompt", "text_hash"], name="unique_completion_text")]

    @property
    def truncated(self) -> bool:
        return self.finish_reason == self.FinishReason.LENGTH

    def __str__(self) -> str:
        return self.text[:80]


class Flag(models.Model):
    """A quality signal on a prompt (or one of its completions): truncated, near-duplicate, refusal..."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="flags")
    completion = models.ForeignKey(Completion, null=True, blank=True, on_delete=models.CASCADE, related_name="flags")
    kind = models.CharField(max_length=40)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "prompt"], name="flag_kind_idx")]


class SimilarityKey(models.Model):
    """MinHash LSH band keys of a prompt or completion text: equal keys mark near-duplicate candidates.

    Kept in the database so that every import batch is compared with everything imported before it.
    """

    class Kind(models.TextChoices):
        PROMPT = "p", "Prompt"
        COMPLETION = "c", "Completion"

    # Eight rows per text, written by the follow-up job of every import: no foreign-key constraints (each row's
    # three checks at commit were a quarter of that job's time) and two indexes fewer: a project's keys go
    # with it in one DELETE, and a completion's keys carry its prompt, by which they are replaced and cascaded
    # when prompts go. The rows are derived: a key whose completion was deleted alone only names a candidate
    # that is no longer found (``_confirmed`` skips it), never a flag, and is replaced with its prompt's.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    kind = models.CharField(max_length=1, choices=Kind.choices)
    key = models.BigIntegerField(help_text="Band number and band hash mixed into one 63-bit value.")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    completion = models.ForeignKey(Completion, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                                   db_index=False, db_constraint=False)

    class Meta:
        # The key first: a lookup is ``key = ANY(thousands of keys)`` within one project and kind. Led by the
        # project, the index let the planner read the project's whole range and filter by key whenever its
        # statistics had not seen the project yet (every import into a new one): 0.5 s a lookup at 4M keys.
        indexes = [models.Index(fields=["key", "project", "kind"], name="similarity_lookup_idx")]


class Tag(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=60)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="unique_prompt_tag")]
        indexes = [models.Index(fields=["name", "prompt"], name="tag_name_idx")]


class Assignment(models.Model):
    """An item handed to an annotator by the review queue and not yet reviewed."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    created_at = models.DateTimeField(auto_now_add=True)
    touched_at = models.DateTimeField(
        default=timezone.now, db_index=True, help_text="Last sign of work; stale assignments go back to the queue."
    )
    draft = models.JSONField(default=dict, blank=True, help_text="Work in progress, autosaved from the review page.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prompt", "annotator"], name="unique_assignment")]


class Review(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        SKIP = "skip", "Skip"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="reviews")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    ranking = models.JSONField(default=list, blank=True, help_text="Completion ids, best first.")
    chosen = models.ForeignKey(Completion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    edited_text = models.TextField(blank=True, help_text="The annotator's edit of the chosen completion.")
    comment = models.TextField(blank=True)
    seconds_spent = models.FloatField(default=0)
    is_adjudication = models.BooleanField(default=False, help_text="A curator's final word on a disagreement.")
    superseded = models.BooleanField(
        default=False, help_text="The item was sent back to the queue after this review; kept, but no longer counts."
    )
    version = models.PositiveIntegerField(default=1, help_text="Optimistic concurrency: bumped on every save.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prompt", "annotator"], name="unique_review")]
        indexes = [models.Index(fields=["annotator", "updated_at"], name="review_annotator_idx")]

    @property
    def final_text(self) -> str:
        if self.edited_text:
            return self.edited_text
        return self.chosen.text if self.chosen else ""


class CompletionRevision(models.Model):
    """Every edit of a completion is kept: who, when, the text before and after."""

    completion = models.ForeignKey(Completion, on_delete=models.CASCADE, related_name="revisions")
    review = models.ForeignKey(Review, null=True, blank=True, on_delete=models.SET_NULL, related_name="revisions")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text_before = models.TextField()
    text_after = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class DatasetVersion(models.Model):
    """An immutable snapshot: its rows are copied in at freeze time and never change afterwards."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="dataset_versions")
    number = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    rule = models.JSONField(default=dict, help_text="What selected the rows, e.g. {'status': 'approved'}.")
    note = models.TextField(blank=True)
    heldout_fraction = models.FloatField(default=0.1)
    seed = models.IntegerField(default=0)
    row_count = models.PositiveIntegerField(default=0)
    train_count = models.PositiveIntegerField(default=0)
    heldout_count = models.PositiveIntegerField(default=0)
    pair_count = models.PositiveIntegerField(default=0, help_text="Preference pairs available for DPO.")
    content_hash = models.CharField(max_length=64)
    contamination = models.JSONField(
        default=dict, blank=True,
        help_text="The last n-gram overlap check of the training rows against the project's evaluation data.",
    )

    class Meta:
        ordering = ["project", "-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="unique_version_number")]

    def __str__(self) -> str:
        return f"{self.project.slug} v{self.number}"


class DatasetRow(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        HELDOUT = "heldout", "Held-out"

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="rows")
    position = models.PositiveIntegerField()
    split = models.CharField(max_length=10, choices=Split.choices)
    prompt_id = models.BigIntegerField(help_text="A plain id, not a foreign key: the row outlives edits.")
    messages = models.JSONField(help_text="Prompt turns, system turn included.")
    response = models.TextField(help_text="The curated answer (the annotator's edit applied).")
    original = models.TextField(help_text="The teacher's original text of the chosen completion.")
    rejected = models.JSONField(default=list, help_text="Worse candidates' texts, best first (for DPO).")
    source = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [models.UniqueConstraint(fields=["version", "position"], name="unique_row_position")]
        indexes = [models.Index(fields=["version", "split", "position"], name="row_split_idx")]


class BulkActionJob(BackgroundJob):
    """A bulk action on a browse filter, run by a worker in chunks with its progress (100k+ items at a time)."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        REQUEUE = "requeue", "Re-queue"
        TAG = "tag", "Tag"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="bulk_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    tag_name = models.CharField(max_length=60, blank=True)
    filters = models.JSONField(default=dict, blank=True, help_text="The browse filter, re-read by the worker.")
    total = models.PositiveIntegerField(default=0, help_text="Items the filter matched when confirmed.")
    done = models.PositiveIntegerField(default=0)
    last_id = models.BigIntegerField(default=0, help_text="Items are done in id order: a resumed attempt starts after.")

    class Meta:
        ordering = ["-created_at"]


def upload_name(instance, filename: str) -> str:
    """A random name for an upload: the curator's file name is kept in ``original_name`` only, so nothing
    they choose becomes part of a server path (and no stored upload ends in .py or .yaml)."""
    return f"imports/{secrets.token_hex(16)}.upload"


class ImportJob(BackgroundJob):
    class Format(models.TextChoices):
        AUTO = "auto", "Detect automatically"
        JSONL = "jsonl", "Generic JSONL"
        OPENAI_BATCH = "openai-batch", "OpenAI Batch output"
        SHAREGPT = "sharegpt", "ShareGPT"
        ALPACA = "alpaca", "Alpaca"
        CSV = "csv", "CSV (prompt, completion)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    file = models.FileField(upload_to=upload_name, max_length=500, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    batch_input_file = models.FileField(upload_to=upload_name, max_length=500, blank=True)
    format = models.CharField(max_length=20, choices=Format.choices, default=Format.AUTO)
    detected_format = models.CharField(max_length=20, blank=True)
    skip_invalid = models.BooleanField(default=False)
    read_count = models.PositiveIntegerField(default=0)
    imported_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    invalid_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{line, reason}], the first ones.")
    rejects_path = models.CharField(max_length=500, blank=True)
    message = models.TextField(blank=True)
    resume_line = models.PositiveBigIntegerField(
        default=0, help_text="Records read up to the last committed batch: a resumed attempt skips them."
    )

    @property
    def flag_job(self) -> QualityFlagJob | None:
        """The latest follow-up job computing this import's quality flags (None when there is none)."""
        return self.flag_jobs.order_by("-pk").first()


class QualityFlagJob(BackgroundJob):
    """The quality flags of an import's prompts, computed after the import committed (a follow-up job).

    Each import batch marks the prompts it wrote (a ``PendingFlag`` row) in the transaction that wrote them;
    this job flags the marked prompts batch by batch, a chunk per transaction, removing their marks as it goes:
    a resumed attempt continues with the marks left. Items are in the review queue before their flags arrive.
    """

    import_job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="flag_jobs")
    total = models.PositiveIntegerField(default=0, help_text="Prompts to flag when the job was queued.")
    done = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.done / self.total)) if self.total else 100


class PendingFlag(models.Model):
    """Prompts one import batch wrote (new, or given new completions) whose quality flags are still to come.

    One row per batch, the prompt ids in a list: a row (with its indexes and foreign-key checks) per prompt
    cost an import about a fifth of its database time. The follow-up job takes the rows in order and shrinks
    or deletes each one in the transaction that flags its prompts. A prompt deleted meanwhile is skipped.
    """

    import_job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="+")
    prompt_ids = models.JSONField(default=list)
    size = models.PositiveIntegerField(default=0, help_text="How many prompt ids the row holds.")


class Teacher(models.Model):
    class Kind(models.TextChoices):
        LOCAL = "local", "Local model (HF folder or GGUF)"
        OPENAI = "openai-compatible", "OpenAI-compatible API"

    class Engine(models.TextChoices):
        TRANSFORMERS = "transformers", "Hugging Face transformers (CPU or GPU)"
        LLAMA_CPP = "llama.cpp", "llama.cpp (GGUF files on the CPU; optional extra)"
        VLLM = "vllm", "vLLM (needs a GPU)"

    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="teachers",
        help_text="Empty: available to every project.",
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    model_path = models.CharField(max_length=500, blank=True, help_text="Local: a model folder or a .gguf file.")
    gguf_file = models.CharField(max_length=255, blank=True)
    engine = models.CharField(
        max_length=20, choices=Engine.choices, default=Engine.TRANSFORMERS,
        help_text="What runs a local teacher. llama.cpp takes .gguf files; vLLM needs a GPU worker.",
    )
    # A CharField, not URLField: Django's URL check rejects service names like http://vllm:8000/v1.
    base_url = models.CharField(max_length=500, blank=True, help_text="e.g. http://localhost:8000/v1")
    model_name = models.CharField(max_length=200, blank=True)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="The NAME of the environment variable holding the key."
    )
    default_params = models.JSONField(default=dict, blank=True)
    terms_of_use = models.TextField(
        blank=True, help_text="The model's licence or terms on using its outputs; copied into every dataset card.",
    )
    price_per_million_tokens = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True,
        help_text="API teachers: price per 1M generated tokens (USD), for the project's cost view.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_teacher_name"),
            # NULLs are distinct in a unique index, so global teachers need a constraint of their own.
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(project__isnull=True), name="unique_global_teacher_name"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def local_path(self) -> Path:
        """A local teacher's model folder or .gguf file. Relative paths live in the data dir, so a registered
        teacher survives moving the data dir."""
        from curation.teachers.paths import in_data_dir

        path = Path(self.model_path) / self.gguf_file if self.gguf_file else Path(self.model_path)
        return in_data_dir(path, Path(settings.DATA_DIR))


class GenerationJob(BackgroundJob):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generation_jobs")
    teacher = models.ForeignKey(Teacher, on_delete=models.PROTECT, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    selection = models.JSONField(default=dict, help_text="{'mode': 'pending'|'filter'|'ids', ...}")
    n = models.PositiveSmallIntegerField(default=2, help_text="Candidates per prompt.")
    temperature = models.FloatField(default=0.7)
    top_p = models.FloatField(default=0.95)
    max_new_tokens = models.PositiveIntegerField(default=256)
    system_prompt = models.TextField(blank=True)
    seed = models.IntegerField(default=0)
    total = models.PositiveIntegerField(default=0, help_text="Prompts to answer (those already answered excluded).")
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Selected prompts that already had enough candidates.")
    generated_tokens = models.PositiveBigIntegerField(default=0)
    tokens_per_second = models.FloatField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)


class ServerResource(models.Model):
    """A path on the server an operator registered, for curators to pick by name.

    Curators never type a server path: local students and models to evaluate are picked from the
    registered ``model`` entries, lm-eval task folders (which may import Python through ``!function``)
    from the registered ``tasks`` entries.
    """

    class Kind(models.TextChoices):
        MODEL = "model", "Model (folder or .gguf file)"
        TASKS = "tasks", "lm-eval task folder"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.SlugField(max_length=100, help_text="What curators pick, e.g. qwen-0.5b or house-tasks.")
    path = models.CharField(max_length=500, help_text="Absolute, or relative to the data dir.")
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="unique_server_resource_name")]
        permissions = [
            ("operate_server", "Operator: may register server paths, task folders, API key variables and hosts"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def full_path(self) -> Path:
        from curation.teachers.paths import in_data_dir

        return in_data_dir(self.path, Path(settings.DATA_DIR))


class SynthesisJob(BackgroundJob):
    """Prompts the teacher writes itself (Magpie: the chat template's user header with no content), deduplicated
    against the project and quality-flagged, added to the project; optionally answered by a generation job."""

    job_kind = "synthesis"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="synthesis_jobs")
    teacher = models.ForeignKey(Teacher, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    count = models.PositiveIntegerField(help_text="New prompts to add.")
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(default=1.0)
    top_p = models.FloatField(default=1.0)
    max_new_tokens = models.PositiveIntegerField(default=64, help_text="Longest prompt, in tokens.")
    seed = models.IntegerField(default=0)
    keep_flagged = models.BooleanField(default=False, help_text="Add flagged prompts too (with their flags).")
    answer = models.BooleanField(default=True, help_text="Then queue a greedy generation job for the new prompts.")
    created = models.PositiveIntegerField(default=0)
    sampled = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    prompt_ids = models.JSONField(default=list, blank=True)
    generation_job = models.ForeignKey(
        GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"synthesis of {self.count} prompts by {self.teacher} in {self.project}"
