"""Dataset versions: freeze the approved prompts into immutable rows, and export them for training.

A row is a copy, not a reference: later reviews and edits never change a frozen version. The split is decided
per prompt by a hash of the seed and the prompt's content hash, so a prompt keeps its side across versions
(a held-out prompt of version 1 does not leak into the training set of version 2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max

from curation.bulk import insert_rows, to_json
from curation.models import Completion, DatasetRow, DatasetVersion, Project, Prompt, Review

CHUNK = 1000
EXPORT_FORMATS = ("sft", "prompt-completion", "dpo")
EXPORT_SPLITS = ("train", "heldout", "all")
RULE = {
    "status": "approved",
    "final_review": "adjudication first, then the latest approving review",
    "split": "sha256('<seed>:<prompt content hash>') below heldout_fraction is held out",
}


def dataset_version_freeze(
    *, project: Project, created_by=None, heldout_fraction: float = 0.1, seed: int = 0, note: str = ""
) -> DatasetVersion:
    """Copy the project's approved prompts, with their curated answers, into a new numbered version."""
    if not 0 <= heldout_fraction < 1:
        raise ValidationError({"heldout_fraction": "The held-out fraction must be at least 0 and below 1."})
    _refresh_statistics()
    with transaction.atomic():
        # Locking the project serialises concurrent freezes, so two versions never get the same number.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        number = (DatasetVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
        version = DatasetVersion.objects.create(
            project=project, number=number, created_by=created_by, note=note, seed=seed,
            heldout_fraction=heldout_fraction, rule=dict(RULE), content_hash="",
        )
        writer = _copy_rows(version, project)
        if version.row_count == 0:
            raise ValidationError(
                "Nothing to freeze: the project has no approved prompts with a chosen or edited answer."
            )
        _ensure_both_splits(version, writer.nearest)
        version.rule["skipped_without_answer"] = writer.skipped
        version.content_hash = _content_hash(version, writer.digest)
        version.save()
        _enqueue_prepare(version)
    # Decontamination as part of every freeze, after its transaction so no lock is held meanwhile: 13-gram
    # hashing checks ~4k rows/s on one busy core (bench figure in the README), so it runs here rather than as
    # a job; the version page runs it again on demand.
    from curation.services.contamination import dataset_version_check_contamination

    dataset_version_check_contamination(version=version)
    return version


ROW_FIELDS = ("version", "position", "split", "prompt_id", "messages", "response", "original", "rejected", "source",
              "metadata")


class _Candidate(NamedTuple):
    id: int
    text: str
    source: str


class _Review(NamedTuple):
    id: int
    chosen_id: int | None
    ranking: list
    edited_text: str


def _refresh_statistics() -> None:
    """PostgreSQL: ANALYZE what the freeze reads, before reading it.

    A bulk import or approval can leave the planner believing these tables are nearly empty, and a plan made
    on that belief (a nested loop over a spilled subquery) turns a one-minute freeze into an hours-long one.
    Run outside the freeze's transaction, so the lock ANALYZE takes is released at once.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        for model in (Prompt, Review, Completion):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _copy_rows(version: DatasetVersion, project: Project) -> _RowWriter:
    """Stream the approved prompts, their final reviews and their candidates side by side, in prompt-id order.

    Three ordered queries read in step (not one query per chunk of prompts): their plans do not depend on
    fresh table statistics, which a bulk approval can leave stale, turning per-chunk lookups into scans.
    """
    approved = {"prompt__project": project, "prompt__status": Prompt.Status.APPROVED}
    prompts = (
        Prompt.objects.filter(project=project, status=Prompt.Status.APPROVED).order_by("id")
        .values_list("id", "messages", "content_hash", "external_id", "metadata")
    )
    reviews = _InStep(
        Review.objects.filter(**approved, decision=Review.Decision.APPROVE, superseded=False)
        .order_by("prompt_id", "-is_adjudication", "-updated_at", "-id")
        .values_list("prompt_id", "id", "chosen_id", "ranking", "edited_text")
    )
    candidates = _InStep(
        Completion.objects.filter(**approved).order_by("prompt_id", "id").values_list("prompt_id", "id", "text", "source")
    )
    writer = _RowWriter(version, project.system_prompt)
    for prompt in prompts.iterator(chunk_size=CHUNK):
        found = reviews.take(prompt[0])
        writer.add(prompt, _Review(*found[0]) if found else None, [_Candidate(*c) for c in candidates.take(prompt[0])])
    writer.flush()
    return writer


class _InStep:
    """Rows of a query ordered by prompt id, handed out group by group as the prompts go by."""

    def __init__(self, queryset):
        self._groups = groupby(queryset.iterator(chunk_size=CHUNK), key=itemgetter(0))
        self._current = next(self._groups, None)

    def take(self, prompt_id: int) -> list[tuple]:
        while self._current is not None and self._current[0] < prompt_id:
            self._current = next(self._groups, None)
        if self._current is None or self._current[0] != prompt_id:
            return []
        rows = [row[1:] for row in self._current[1]]
        self._current = next(self._groups, None)
        return rows


class _RowWriter:
    """Turns each prompt into its frozen row, inserts them a chunk at a time, keeps counts and the content hash."""

    def __init__(self, version: DatasetVersion, system_prompt: str):
        self.version, self.system_prompt = version, system_prompt
        self.digest = hashlib.sha256()
        self.skipped = 0
        # Per split, the row nearest the threshold (score, position), in case one side ends up empty.
        self.nearest: dict[str, tuple[float, int]] = {}
        self._rows: list[tuple] = []

    def add(self, prompt: tuple, review: _Review | None, candidates: list[_Candidate]) -> None:
        prompt_id, messages, content_hash, external_id, metadata = prompt
        answer = _answer(review, candidates) if review else None
        if answer is None:
            self.skipped += 1
            return
        response, original, rejected, chosen = answer
        version, position = self.version, self.version.row_count
        key = _split_key(version.seed, content_hash)
        split = DatasetRow.Split.HELDOUT if key < version.heldout_fraction else DatasetRow.Split.TRAIN
        messages = _with_system(messages, self.system_prompt)
        meta = {"review_id": review.id, "completion_id": chosen.id if chosen else None,
                "edited": response != original, "external_id": external_id, "prompt": metadata}
        self.digest.update(_line([messages, response, original, rejected]))
        self._rows.append((version.pk, position, split, prompt_id, to_json(messages), response, original,
                           to_json(rejected), chosen.source if chosen else "edited", to_json(meta)))
        # The held-out row with the highest key and the training row with the lowest are nearest the line.
        score = key if split == DatasetRow.Split.HELDOUT else -key
        if split not in self.nearest or score > self.nearest[split][0]:
            self.nearest[split] = (score, position)
        version.row_count += 1
        version.heldout_count += split == DatasetRow.Split.HELDOUT
        version.pair_count += len(_pairs(response, original, rejected))
        if len(self._rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        insert_rows(DatasetRow, ROW_FIELDS, self._rows, ignore_conflicts=False)
        self._rows = []


def _answer(review: _Review, completions: list[_Candidate]) -> tuple[str, str, list[str], _Candidate | None] | None:
    """(response, original, rejected texts, chosen candidate) of a final review, or None when it gives no answer."""
    by_id = {c.id: c for c in completions}
    ranking = [by_id[i] for i in review.ranking if isinstance(i, int) and i in by_id]
    chosen = by_id.get(review.chosen_id) or (ranking[0] if ranking else None)
    chosen = chosen or (completions[0] if len(completions) == 1 else None)
    original = chosen.text if chosen else ""
    response = review.edited_text or original
    if not response.strip():
        return None
    if chosen is not None and chosen in ranking:
        worse = ranking[ranking.index(chosen) + 1:]
    else:  # no usable ranking: every other candidate lost to the chosen one
        worse = [c for c in completions if c != chosen]
    rejected = list(dict.fromkeys(c.text for c in worse if c.text != response))
    return response, original, rejected, chosen


def _with_system(messages: list[dict], system: str) -> list[dict]:
    if system and not any(m["role"] == "system" for m in messages):
        return [{"role": "system", "content": system}, *messages]
    return messages


def _split_key(seed: int, content_hash: str) -> float:
    digest = hashlib.sha256(f"{seed}:{content_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _ensure_both_splits(version: DatasetVersion, nearest: dict[str, tuple[float, int]]) -> None:
    """A small version can land wholly on one side; then the row nearest the threshold moves across."""
    if version.heldout_fraction > 0 and version.row_count >= 2:
        if version.heldout_count == 0:
            version.rows.filter(position=nearest[DatasetRow.Split.TRAIN][1]).update(split=DatasetRow.Split.HELDOUT)
            version.heldout_count = 1
        elif version.heldout_count == version.row_count:
            version.rows.filter(position=nearest[DatasetRow.Split.HELDOUT][1]).update(split=DatasetRow.Split.TRAIN)
            version.heldout_count -= 1
    version.train_count = version.row_count - version.heldout_count


def _content_hash(version: DatasetVersion, rows_digest) -> str:
    """The rows' content in position order, then which positions are held out (the split is content too)."""
    digest = hashlib.sha256(rows_digest.digest())
    heldout = version.rows.filter(split=DatasetRow.Split.HELDOUT).order_by("position").values_list("position", flat=True)
    for position in heldout.iterator(chunk_size=10 * CHUNK):
        digest.update(b"%d," % position)
    return digest.hexdigest()


# --- exports ---------------------------------------------------------------------------------------------


def _line(obj) -> bytes:
    """One canonical JSON line: the same rows always give the same bytes."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"


def _pairs(response: str, original: str, rejected: list[str]) -> list[str]:
    """The rejected texts of a row's preference pairs: the teacher's original when edited, then the worse ones."""
    losers = [original] if original and original != response else []
    return list(dict.fromkeys(losers + [text for text in rejected if text != response]))


def dataset_export_lines(*, version: DatasetVersion, format: str, split: str = "train") -> Iterator[bytes]:  # noqa: A002
    """The export as JSON lines, streamed from the database in position order.

    Arguments are checked now, before the first line, so a web response can still answer 400.
    """
    if format not in EXPORT_FORMATS:
        raise ValidationError({"format": f"Unknown export format '{format}'. Use one of: {', '.join(EXPORT_FORMATS)}."})
    if split not in EXPORT_SPLITS:
        raise ValidationError({"split": f"Unknown split '{split}'. Use one of: {', '.join(EXPORT_SPLITS)}."})
    rows = version.rows.order_by("position")
    if split != "all":
        rows = rows.filter(split=split)
    return _export_lines(rows, format)


def _export_lines(rows, format: str) -> Iterator[bytes]:  # noqa: A002
    fields = ("prompt_id", "messages", "response", "original", "rejected")
    for prompt_id, messages, response, original, rejected in rows.values_list(*fields).iterator(chunk_size=CHUNK):
        answer = [{"role": "assistant", "content": response}]
        if format == "sft":
            yield _line({"id": prompt_id, "messages": messages + answer})
        elif format == "prompt-completion":
            yield _line({"id": prompt_id, "prompt": messages, "completion": answer})
        else:
            for loser in _pairs(response, original, rejected):
                yield _line({
                    "id": prompt_id, "prompt": messages, "chosen": answer,
                    "rejected": [{"role": "assistant", "content": loser}],
                })


def dataset_export(
    *, version: DatasetVersion, format: str, split: str = "train", out: Path | str | BinaryIO  # noqa: A002
) -> int:
    """Write the export to a path or a binary file; returns the number of lines written."""
    lines = dataset_export_lines(version=version, format=format, split=split)
    if not isinstance(out, (str, Path)):
        return _write(lines, out)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as handle:
        count = _write(lines, handle)
    tmp.replace(path)  # readers never see half a file
    return count


def _write(lines: Iterator[bytes], handle: BinaryIO) -> int:
    count = 0
    for line in lines:
        handle.write(line)
        count += 1
    return count


# --- prepared export files (resumable downloads) --------------------------------------------------------


def export_file_path(*, version: DatasetVersion, format: str, split: str) -> Path:  # noqa: A002
    """Where the prepared export lies. Named by the content hash: a version's bytes never change."""
    folder = Path(settings.DATA_DIR) / "exports" / f"version-{version.pk}-{version.content_hash[:16]}"
    return folder / f"{format}-{split}.jsonl"


def prepared_export(*, version: DatasetVersion, format: str, split: str) -> Path | None:  # noqa: A002
    path = export_file_path(version=version, format=format, split=split)
    return path if path.is_file() else None


def dataset_export_prepare(*, version_id: int) -> int:
    """Write every format and split of the version once, each atomically; returns the files written.

    Idempotent (present files are kept), so a rerun after a lost worker just finishes the rest. Until a file
    is there, a download streams from the database instead (no resume).
    """
    version = DatasetVersion.objects.filter(pk=version_id).first()
    if version is None:
        return 0
    written = 0
    for format in EXPORT_FORMATS:  # noqa: A001
        for split in EXPORT_SPLITS:
            path = export_file_path(version=version, format=format, split=split)
            if not path.is_file():
                dataset_export(version=version, format=format, split=split, out=path)
                written += 1
    return written


def _enqueue_prepare(version: DatasetVersion) -> None:
    from curation.tasks import dataset_export_prepare as task

    transaction.on_commit(lambda: task.delay(version.pk))
