"""Importing teacher outputs: one service behind the command, the API and the upload page.

The file is streamed record by record (``curation.importers``) and written in batches of 5,000: per batch, one
query finds the prompts that exist already, one insert adds the others and returns their ids, one insert adds
the completions (skipping those stored before). No per-row query, no per-value ORM work (``curation.bulk``),
and memory stays flat whatever the file size.

All-or-nothing by default: the whole import is one transaction, and after the first invalid line nothing
more is written (the rest is still read, to report every bad line). With ``skip_invalid`` each batch commits
on its own, with the job's counts and the number of records read so far (``resume_line``), and the rejected
lines go to a JSON-lines file with their reasons.

Background imports follow the shared job lifecycle (``curation.jobs``): a worker that dies mid-import leaves
either nothing (all-or-nothing rolled back) or whole batches with their counts; the next attempt skips the
records those batches covered, so nothing is written or counted twice.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, connection, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from curation.bulk import array_text, insert_rows, to_json
from curation.hashing import messages_hash, text_hash
from curation.importers import FileError, Invalid, Record, read_records
from curation.importers.ahead import ReadAhead
from curation.importers.lines import MAX_LINE_BYTES
from curation.jobs import services as jobs
from curation.models import Completion, ImportJob, JobStatus, PendingFlag, Project, Prompt
from curation.services.quality import quality_flag_prompts, quality_flags_follow_up
from curation.services.search import search_documents_defer

MAX_ERRORS_KEPT = 1000


@dataclass
class Counts:
    read: int = 0
    imported: int = 0
    duplicate: int = 0
    invalid: int = 0
    new_prompts: int = 0
    new_completions: int = 0


def import_file(
    *,
    project: Project,
    path: Path | str,
    format: str = "auto",  # noqa: A002 - the word users see on every door
    skip_invalid: bool = False,
    batch_input: Path | str | None = None,
    rejects_path: Path | str | None = None,
    job: ImportJob | None = None,
    created_by=None,
    max_line_bytes: int = MAX_LINE_BYTES,
    flag_quality: bool = True,
    flags_inline: bool | None = None,
) -> ImportJob:
    """Import ``path`` into ``project``; the returned job (created unless given) holds counts and errors.

    Bad data does not raise: the job ends ``failed`` with its reasons. Unexpected errors fail the job and raise.
    ``flag_quality``: each batch marks the prompts it wrote, and once the import is over a follow-up job
    (``QualityFlagJob``) computes their quality flags (truncated, near-duplicate...) outside the import's
    transactions. ``flags_inline`` runs that job here before returning; by default it does when this call
    holds its own job (the command), and a worker runs it otherwise.
    """
    inline = job is None if flags_inline is None else flags_inline
    if format not in ImportJob.Format.values:
        raise ValidationError({"format": f"Unknown format '{format}'. Use one of: {', '.join(ImportJob.Format.values)}."})
    path = Path(path)
    if job is None:  # run here and now (the command): this process holds the job, as a worker would
        now = timezone.now()
        job = ImportJob.objects.create(
            project=project, created_by=created_by, original_name=str(path)[-255:], format=format,
            skip_invalid=skip_invalid, status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=1,
            worker=jobs.this_worker(),
        )
    rejects = _Rejects(Path(rejects_path) if rejects_path else _default_rejects_path(job))
    try:
        with jobs.job_heartbeat(ImportJob, job.pk), read_records(
            path, format, batch_input=batch_input, max_line_bytes=max_line_bytes
        ) as (detected, items), ReadAhead(_prepared(items)) as records:
            job.detected_format = detected
            importer = _Importer(project, job, flag_quality)
            if skip_invalid:
                counts = importer.skipping_invalid(records, rejects)
            else:
                counts = importer.all_or_nothing(records)
    except FileError as exc:
        job = _finish(job, JobStatus.FAILED, Counts(), str(exc))
        if flag_quality:  # a skip-invalid import may have committed batches before the file went bad
            quality_flags_follow_up(import_job=job, inline=inline)
        return job
    except Exception as exc:
        _finish(job, JobStatus.FAILED, Counts(), f"The import stopped on an unexpected error: {exc!r}")
        raise
    finally:
        rejects.close()
    job.rejects_path = str(rejects.path) if rejects.count else ""
    job = _finish(job, *_outcome(counts, skip_invalid, rejects))
    if flag_quality:
        quality_flags_follow_up(import_job=job, inline=inline)
    return job


class _Importer:
    """The two ways through a file: one transaction for all of it, or one per batch with the rejects set aside."""

    def __init__(self, project: Project, job: ImportJob, flag_quality: bool):
        self.project, self.job, self.flag_quality = project, job, flag_quality
        self.counts = Counts()

    def all_or_nothing(self, records) -> Counts:
        batch = _Batch()
        with transaction.atomic():
            for item in records:
                self.counts.read += 1
                if isinstance(item, Invalid):
                    _note_invalid(self.job, self.counts, item)
                    batch.clear()  # nothing more is written: the transaction will be rolled back
                elif not self.counts.invalid and batch.add(item):
                    self._write(batch.records)
                    batch.clear()
            if batch.records and not self.counts.invalid:
                self._write(batch.records)
            if self.counts.invalid:
                transaction.set_rollback(True)
        return self.counts

    def skipping_invalid(self, records, rejects: _Rejects) -> Counts:
        """Batch by batch, each committed with the counts so far; a resumed attempt skips what was committed."""
        job, skip = self.job, self.job.resume_line
        self.counts = Counts(read=skip, imported=job.imported_count, duplicate=job.duplicate_count,
                             invalid=job.invalid_count)
        batch = _Batch()
        for index, item in enumerate(records, start=1):
            if index <= skip:  # committed by an earlier attempt; its rejects are written again, not counted
                if isinstance(item, Invalid):
                    rejects.write(item)
                continue
            self.counts.read += 1
            if isinstance(item, Invalid):
                self._reject(item, rejects)
            elif batch.add(item):
                self._commit(batch, rejects)
        self._commit(batch, rejects)
        return self.counts

    def _reject(self, item: Invalid, rejects: _Rejects) -> None:
        _note_invalid(self.job, self.counts, item)
        rejects.write(item)

    def _commit(self, batch: _Batch, rejects: _Rejects) -> None:
        """The batch and the job's counts in one transaction. A batch the database refuses is written record by
        record, each in a savepoint: the refused ones become rejects with the database's reason, so a job never
        ends failed with rows committed."""
        with transaction.atomic():
            try:
                with transaction.atomic():
                    if batch.records:
                        self._write(list(batch.records))
            except DatabaseError:
                for record in batch.records:
                    try:
                        with transaction.atomic():
                            self._write([record])
                    except DatabaseError as exc:
                        reason = f"refused by the database: {str(exc).strip().splitlines()[0][:300]}"
                        self._reject(Invalid(record.line, reason), rejects)
            batch.clear()
            counts = self.counts
            jobs.job_beat(ImportJob, self.job.pk, resume_line=counts.read, read_count=counts.read,
                          imported_count=counts.imported, duplicate_count=counts.duplicate,
                          invalid_count=counts.invalid, errors=self.job.errors)

    def _write(self, batch: list[Record]) -> None:
        if self.flag_quality:  # the follow-up job builds the search documents of the marked prompts
            search_documents_defer()
        touched = _write_batch(self.project, batch, self.counts)
        if self.flag_quality and touched:
            # Marked in the batch's transaction (a rolled-back batch leaves no mark); flagged after the import.
            PendingFlag.objects.create(import_job=self.job, prompt_ids=sorted(touched), size=len(touched))


def prompts_add(*, project: Project, records: list[Record]) -> tuple[Counts, set[int]]:
    """Add prompts (and any candidates) the way an import does: deduplicated by content, quality-flagged, in one
    transaction. For prompts made inside the app (synthesis) rather than read from a file."""
    counts = Counts(read=len(records))
    with transaction.atomic():
        touched = _write_batch(project, list(records), counts)
        if touched:
            quality_flag_prompts(touched)
    return counts, touched


def _prepared(items: Iterator[Record | Invalid]) -> Iterator[Record | Invalid]:
    """Checked, hashed and sized records: the work of an import that needs no database, done in the reading
    thread (``ReadAhead``) while the database writes the previous batch."""
    for item in items:
        item = _checked(item)
        if isinstance(item, Record):
            item.content_hash = messages_hash(item.messages)
            for candidate in item.candidates:
                candidate.text_hash = text_hash(candidate.text)
            item.size = _record_bytes(item)
        yield item


class _Batch:
    """Records waiting to be written, bounded by count and by the bytes of text they hold: 5,000 short records
    or a few hundred 50 KB ones make batches of similar memory, so peak RSS stays flat whatever the line size."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.size = 0
        self.max_records, self.max_bytes = settings.IMPORT_BATCH_RECORDS, settings.IMPORT_BATCH_BYTES

    def add(self, record: Record) -> bool:
        """Add; True when the batch is full and must be written now."""
        self.records.append(record)
        self.size += record.size or _record_bytes(record)
        return len(self.records) >= self.max_records or self.size >= self.max_bytes

    def clear(self) -> None:
        self.records.clear()
        self.size = 0


def _record_bytes(record: Record) -> int:
    texts = sum(len(message.get("content") or "") for message in record.messages)
    candidates = sum(len(c.text) + (len(c.logprobs) * 64 if isinstance(c.logprobs, list) else 0)
                     for c in record.candidates)
    return texts + candidates + 256  # plus the fixed cost of the row objects


NUL = "\x00"


def _checked(item: Record | Invalid) -> Record | Invalid:
    """PostgreSQL text and JSON cannot hold NUL; rejecting it here gives every database the same answer."""
    if isinstance(item, Invalid):
        return item
    fields = [("messages", m.get("content") or "") for m in item.messages]
    fields += [("completion", c.text) for c in item.candidates] + [("id", item.external_id)]
    fields += [("metadata", to_json(item.metadata))] if item.metadata else []
    for name, text in fields:
        if NUL in text or (name == "metadata" and "\\u0000" in text):
            return Invalid(item.line, f"{name} contains a NUL character (\\u0000), which cannot be stored")
    return item


def _write_batch(project: Project, batch: list[Record], counts: Counts) -> set[int]:
    """Insert the batch's new prompts and completions; count each record as imported or duplicate.

    Returns the ids of the prompts that are new or got new completions.

    Unique constraints decide what is new (inserts skip conflicts and return what they inserted), so a
    concurrent import of the same file cannot make this one fail or double-count.
    """
    by_hash: dict[str, Record] = {}
    hashes = []
    for record in batch:
        digest = record.content_hash or messages_hash(record.messages)
        hashes.append(digest)
        by_hash.setdefault(digest, record)
    ids = _prompt_ids(project, list(by_hash))
    fresh = [digest for digest in by_hash if digest not in ids]
    rows = [_prompt_row(project.pk, digest, by_hash[digest]) for digest in fresh]
    created = dict(insert_rows(Prompt, PROMPT_FIELDS, rows, returning=("content_hash", "id")))
    ids.update(created)
    if len(ids) < len(by_hash):  # inserted meanwhile by another import: look the rest up
        missing = [digest for digest in by_hash if digest not in ids]
        ids.update(_prompt_ids(project, missing))
    # Completions of prompts created just now cannot exist yet: they go in without a conflict check.
    fresh_completions, other_completions, keys = {}, {}, []
    for record, digest in zip(batch, hashes, strict=True):
        prompt_id = ids[digest]
        record_keys = [(prompt_id, candidate.text_hash or text_hash(candidate.text)) for candidate in record.candidates]
        target = fresh_completions if digest in created else other_completions
        for key, candidate in zip(record_keys, record.candidates, strict=True):
            target.setdefault(key, _completion_row(key[0], key[1], candidate))
        keys.append(record_keys)
    insert_rows(Completion, COMPLETION_FIELDS, list(fresh_completions.values()), ignore_conflicts=False)
    returned = insert_rows(Completion, COMPLETION_FIELDS, list(other_completions.values()), returning=("prompt", "text_hash"))
    inserted = set(fresh_completions) | set(returned)
    counts.new_prompts += len(created)
    counts.new_completions += len(inserted)
    touched = set(created.values()) | {prompt_id for prompt_id, _ in inserted}
    for digest, record_keys in zip(hashes, keys, strict=True):
        # A new prompt or completion counts for the first record that brought it; the rest are duplicates.
        new = [key for key in record_keys if key in inserted]
        inserted.difference_update(new)
        if created.pop(digest, None) is not None or new:
            counts.imported += 1
        else:
            counts.duplicate += 1
    batch.clear()
    return touched


def _prompt_ids(project: Project, hashes: list[str]) -> dict[str, int]:
    """{content hash: id} of the project's prompts among ``hashes``."""
    if connection.vendor == "postgresql":
        # One array parameter, as PostgreSQL's array text (hex digests need no quoting).
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT content_hash, id FROM {Prompt._meta.db_table} "  # noqa: S608
                "WHERE project_id = %s AND content_hash = ANY(%s::varchar[])",
                [project.pk, array_text(hashes)],
            )
            return dict(cursor.fetchall())
    return dict(Prompt.objects.filter(project=project, content_hash__in=hashes).values_list("content_hash", "id"))


PROMPT_FIELDS = ("project", "messages", "text", "content_hash", "external_id", "metadata")
COMPLETION_FIELDS = ("prompt", "text", "text_hash", "source", "params", "finish_reason", "logprobs", "length")


def _prompt_row(project_id: int, digest: str, record: Record) -> tuple:
    # The messages are kept as given: a project's system prompt applies at export only where a prompt has none.
    messages = record.messages
    return (project_id, to_json(messages), messages[-1]["content"], digest, record.external_id, to_json(record.metadata))


def _completion_row(prompt_id: int, digest: str, candidate) -> tuple:
    logprobs = None if candidate.logprobs is None else to_json(candidate.logprobs)
    return (prompt_id, candidate.text, digest, candidate.source, to_json(candidate.params), candidate.finish_reason,
            logprobs, len(candidate.text))


def _note_invalid(job: ImportJob, counts: Counts, item: Invalid) -> None:
    counts.invalid += 1
    if len(job.errors) < MAX_ERRORS_KEPT:
        job.errors.append({"line": item.line, "reason": item.reason})


def _outcome(counts: Counts, skip_invalid: bool, rejects: _Rejects) -> tuple[str, Counts, str]:
    if counts.read == 0:
        return JobStatus.FAILED, counts, "The file holds no records."
    if counts.invalid and not skip_invalid:
        lines = "line" if counts.invalid == 1 else "lines"
        message = (
            f"Nothing imported: {counts.invalid} invalid {lines} of {counts.read}. Fix them, or import with "
            "skip-invalid to import the valid lines and get the rejects in a file."
        )
        return JobStatus.FAILED, Counts(read=counts.read, invalid=counts.invalid), message
    message = (
        f"{counts.imported} records imported ({counts.new_prompts} new prompts, {counts.new_completions} new "
        f"completions), {counts.duplicate} duplicates, {counts.invalid} invalid."
    )
    if rejects.count:
        # No path here: the message is shown to curators; the file is served by the import's rejects link.
        message += f" The {rejects.count} rejected lines are kept with their reasons (download: rejects)."
    return JobStatus.SUCCEEDED, counts, message


def _finish(job: ImportJob, status: str, counts: Counts, message: str) -> ImportJob:
    jobs.job_finish(
        ImportJob, job.pk, status=status, message=message, read_count=counts.read, imported_count=counts.imported,
        duplicate_count=counts.duplicate, invalid_count=counts.invalid, errors=job.errors,
        detected_format=job.detected_format, rejects_path=job.rejects_path,
    )
    job.refresh_from_db()
    return job


class _Rejects:
    """The rejects file, created on the first rejected line only."""

    def __init__(self, path: Path):
        self.path, self.count, self._handle = path, 0, None

    def write(self, item: Invalid) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.count += 1
        entry = {"line": item.line, "reason": item.reason, "raw": item.raw}
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _default_rejects_path(job: ImportJob) -> Path:
    # Beside the uploads, outside the data dir; the name is not guessable either.
    return Path(settings.MEDIA_ROOT) / "rejects" / f"import-{job.pk}-{secrets.token_hex(8)}-rejects.jsonl"


# --- background imports (the API and the upload page) ---------------------------------------------------


@transaction.atomic
def import_job_create(
    *,
    project: Project,
    uploaded_file: UploadedFile,
    format: str = "auto",  # noqa: A002
    skip_invalid: bool = False,
    batch_input_file: UploadedFile | None = None,
    created_by=None,
) -> ImportJob:
    """Store the upload and queue its import on the worker (after commit, so the worker sees the row)."""
    if format not in ImportJob.Format.values:
        raise ValidationError({"format": f"Unknown format '{format}'. Use one of: {', '.join(ImportJob.Format.values)}."})
    if format == ImportJob.Format.OPENAI_BATCH and batch_input_file is None:
        raise ValidationError({"batch_input_file": "An OpenAI Batch output needs its batch input file."})
    limit = settings.UPLOAD_MAX_BYTES
    for field, upload in (("file", uploaded_file), ("batch_input_file", batch_input_file)):
        if upload is not None and upload.size is not None and upload.size > limit:
            raise ValidationError({field: f"The file is larger than the upload limit ({filesizeformat(limit)}); "
                                          "import it on the server with manage.py import_outputs."})
    job = ImportJob(
        project=project, created_by=created_by, file=uploaded_file, original_name=(uploaded_file.name or "")[-255:],
        format=format, skip_invalid=skip_invalid, status=JobStatus.QUEUED,
    )
    if batch_input_file is not None:
        job.batch_input_file = batch_input_file
    job.save()
    jobs.job_enqueue(job)
    return job


def import_job_run(job_id: int) -> ImportJob | None:
    """Run a queued job: the claim is one UPDATE, so a redelivered task does nothing; a resumed job continues
    after its last committed batch."""
    if not jobs.job_claim(ImportJob, job_id):
        return None
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    if not job.file:
        return _finish(job, JobStatus.FAILED, Counts(), "The file of this import is no longer kept (an upload is "
                       "deleted when its import finishes, and a command's file is the command's): import it "
                       "again; rows already stored are not duplicated.")
    try:
        return import_file(
            project=job.project, path=job.file.path, format=job.format, skip_invalid=job.skip_invalid,
            batch_input=job.batch_input_file.path if job.batch_input_file else None, job=job,
            created_by=job.created_by,
        )
    finally:
        # Kept while a job needs it (queued again after a lost worker); deleted once the import has finished.
        _discard_uploads(ImportJob.objects.filter(pk=job_id, status__in=JobStatus.finished()))


def _discard_uploads(jobs) -> None:
    """Uploads are curators' files: delete them from the server once their import is over."""
    for job in jobs.exclude(file=""):
        for upload in (job.file, job.batch_input_file):
            if upload:
                upload.storage.delete(upload.name)
    jobs.update(file="", batch_input_file="")
