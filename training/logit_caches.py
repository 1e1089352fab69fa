"""Offline teacher logits as a background job: create (web, API, command), run (worker), find (KD training).

The ML lives in training.ml.logit_cache; this module is the Django shell around it, on the shared job lifecycle
(curation.jobs): a second delivery does nothing, a dead worker's job is requeued, and a resumed build keeps the
shards an earlier attempt completed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from curation.jobs import services as jobs
from curation.models import DatasetVersion, JobStatus, ServerResource, Teacher
from curation.services.trust import check_outbound_url, registered_resource
from training.ml.config import TrainConfig
from training.models import LogitCache
from training.selectors import teacher_folder

logger = logging.getLogger(__name__)
MAX_TOP_K = 1024


def logit_cache_folder(cache: LogitCache) -> Path:
    return Path(settings.DATA_DIR) / "logit_caches" / f"cache-{cache.pk}"


@transaction.atomic
def logit_cache_create(
    *, dataset_version: DatasetVersion, teacher: Teacher, top_k: int = 32, max_seq_len: int | None = None,
    created_by=None, enqueue: bool = True,
) -> LogitCache:
    """Queue the cache, once: the same version, teacher, k and length give back the existing one (queued again
    if it failed or was cancelled)."""
    if teacher.project_id not in (None, dataset_version.project_id):
        raise ValidationError({"teacher": f"The teacher '{teacher.name}' belongs to another project."})
    if teacher.kind == Teacher.Kind.OPENAI:
        check_outbound_url(teacher.base_url, field="teacher")  # again: the allowlist may have shrunk
        remote_tokenizer_folder(teacher)
    else:
        folder = teacher_folder(teacher)
        if folder is None or not (folder / "config.json").is_file():
            raise ValidationError({"teacher": "Caching logits needs a local teacher saved as a model folder, or "
                                              "an OpenAI-compatible teacher that names its tokenizer."})
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValidationError({"top_k": f"top_k must be between 1 and {MAX_TOP_K}."})
    max_seq_len = max_seq_len or TrainConfig().max_seq_len
    if not dataset_version.train_count:
        raise ValidationError({"dataset_version": "This version has no training rows to cache logits for."})
    existing = LogitCache.objects.filter(dataset_version=dataset_version, teacher=teacher, top_k=top_k,
                                         max_seq_len=max_seq_len).first()
    if existing is not None:
        if existing.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            return jobs.job_resume(job=existing, enqueue=enqueue)
        return existing
    try:
        with transaction.atomic():
            cache = LogitCache.objects.create(dataset_version=dataset_version, teacher=teacher, top_k=top_k,
                                              max_seq_len=max_seq_len, created_by=created_by)
    except IntegrityError:  # created meanwhile by another request
        return LogitCache.objects.get(dataset_version=dataset_version, teacher=teacher, top_k=top_k,
                                      max_seq_len=max_seq_len)
    cache.folder = str(logit_cache_folder(cache))
    cache.save(update_fields=["folder"])
    if enqueue:
        jobs.job_enqueue(cache)
    return cache


def remote_tokenizer_folder(teacher: Teacher) -> Path:
    """An API teacher's tokenizer: the model folder an operator registered under the name the teacher's settings
    give as "tokenizer". The server's answers are mapped to its ids, and the student must share it."""
    name = str((teacher.default_params or {}).get("tokenizer") or "")
    resource = registered_resource(ServerResource.Kind.MODEL, name) if name else None
    if resource is None or not resource.full_path.is_dir():
        raise ValidationError({"teacher": (
            f"Caching logits from the API teacher '{teacher.name}' needs its tokenizer: an operator registers a "
            'folder holding it (admin: Server resources) and the teacher names it in its settings as "tokenizer".')})
    return resource.full_path


def logit_cache_run(*, job_id: int) -> str | None:
    """The worker's side: claim, build (resuming complete shards), store the manifest."""
    return jobs.job_run(LogitCache, job_id, _build, select_related=("dataset_version", "teacher"))


def _build(cache: LogitCache) -> str:
    from curation.services.datasets import dataset_export
    from curation.services.generation import teacher_client
    from curation.teachers import TeacherError
    from curation.teachers.threads import apply_model_threads
    from training.ml.logit_cache import CacheMismatch, build_logit_cache
    from training.ml.student import load_causal_lm, load_tokenizer

    teacher, remote, server = None, None, ""
    if cache.teacher.kind == Teacher.Kind.OPENAI:
        try:
            tokenizer_dir = remote_tokenizer_folder(cache.teacher)
            remote = teacher_client(cache.teacher)
            remote.load()
        except (ValidationError, TeacherError) as error:
            raise jobs.JobFailed(" ".join(getattr(error, "messages", [str(error)]))) from None
        server = f"{cache.teacher.model_name} @ {cache.teacher.base_url}"
    else:
        tokenizer_dir = teacher_folder(cache.teacher)
        if tokenizer_dir is None or not tokenizer_dir.exists():
            raise jobs.JobFailed(f"The teacher {cache.teacher} is not a local model folder any more.")
    folder = Path(cache.folder)
    data = folder / "train.jsonl"
    # The export is deterministic (rows in position order): every attempt writes the same bytes, so the shards
    # of an earlier attempt still match.
    dataset_export(version=cache.dataset_version, format="sft", split="train", out=data)
    apply_model_threads()
    if remote is None:
        teacher = load_causal_lm(tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    state = {"cancelled": False}

    def progress(fraction: float, message: str) -> None:
        state["cancelled"] = not jobs.job_beat(LogitCache, cache.pk, progress=round(fraction, 4))

    try:
        manifest = build_logit_cache(
            teacher, tokenizer, data, folder, teacher_name=cache.teacher.name, top_k=cache.top_k,
            max_seq_len=cache.max_seq_len, progress=progress, should_stop=lambda: state["cancelled"],
            # A round of requests is twice the teacher's concurrency: every connection stays busy, and a cancel
            # waits for one round at most.
            batch_size=remote.concurrency * 2 if remote else 4, remote_client=remote, server=server,
        )
    except (TeacherError, CacheMismatch) as error:
        raise jobs.JobFailed(f"The teacher's server cannot fill the cache: {error}") from None
    if not manifest.complete:
        return JobStatus.CANCELLED
    jobs.job_beat(
        LogitCache, cache.pk, progress=1.0, examples=manifest.examples, tokens=manifest.tokens,
        size_bytes=manifest.size_bytes, sha256=manifest.sha256, train_file_sha256=manifest.train_file_sha256,
        manifest=manifest.to_dict(),
    )
    return JobStatus.SUCCEEDED


def logit_cache_for(*, dataset_version: DatasetVersion, teacher: Teacher | None, max_seq_len: int,
                    train_file: Path) -> LogitCache | None:
    """A finished cache that lines up with this export (same bytes, same truncation), the largest k first."""
    if teacher is None:
        return None
    from training.ml.logit_cache import sha256_file

    digest = sha256_file(train_file)
    candidates = LogitCache.objects.filter(
        dataset_version=dataset_version, teacher=teacher, max_seq_len=max_seq_len, status=JobStatus.SUCCEEDED,
        train_file_sha256=digest,
    ).order_by("-top_k")
    return next((c for c in candidates if (Path(c.folder) / "manifest.json").exists()), None)
