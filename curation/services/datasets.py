"""Dataset versions: freeze the approved prompts into immutable rows, and export them for training.

A row is a copy, not a reference: later reviews and edits never change a frozen version. The split is decided
per prompt by a hash of the seed and the prompt's content hash, so a prompt keeps its side across versions
(a held-out prompt of version 1 does not leak into the training set of version 2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

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
    with transaction.atomic():
        # Locking the project serialises concurrent freezes, so two versions never get the same number.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        number = (DatasetVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
        version = DatasetVersion.objects.create(
            project=project, number=number, created_by=created_by, note=note, seed=seed,
            heldout_fraction=heldout_fraction, rule=dict(RULE), content_hash="",
        )
        skipped, nearest = _copy_rows(version, project)
        if version.row_count == 0:
            raise ValidationError(
                "Nothing to freeze: the project has no approved prompts with a chosen or edited answer."
            )
        _ensure_both_splits(version, nearest)
        version.rule["skipped_without_answer"] = skipped
        version.content_hash = _content_hash(version)
        version.save()
    return version


def _copy_rows(version: DatasetVersion, project: Project) -> tuple[int, dict[str, tuple[float, int]]]:
    """Write the rows in prompt-id order, a chunk at a time.

    Returns how many approved prompts had no answer, and per split the row nearest the threshold
    (split key, position), in case one side ends up empty.
    """
    approved = Prompt.objects.filter(project=project, status=Prompt.Status.APPROVED).order_by("id")
    last_id, skipped, position = 0, 0, 0
    nearest: dict[str, tuple[float, int]] = {}
    while prompts := list(approved.filter(id__gt=last_id)[:CHUNK]):
        last_id = prompts[-1].id
        reviews = _final_reviews([p.id for p in prompts])
        completions = _completions([p.id for p in prompts])
        rows = []
        for prompt in prompts:
            row = _row(version, prompt, reviews.get(prompt.id), completions.get(prompt.id, []), project.system_prompt)
            if row is None:
                skipped += 1
                continue
            key = _split_key(version.seed, prompt.content_hash)
            row.split = DatasetRow.Split.HELDOUT if key < version.heldout_fraction else DatasetRow.Split.TRAIN
            row.position = position
            position += 1
            rows.append(row)
            # The held-out row with the highest key and the training row with the lowest are nearest the line.
            best = nearest.get(row.split)
            score = key if row.split == DatasetRow.Split.HELDOUT else -key
            if best is None or score > best[0]:
                nearest[row.split] = (score, row.position)
        DatasetRow.objects.bulk_create(rows, batch_size=CHUNK)
        version.row_count += len(rows)
        version.heldout_count += sum(1 for row in rows if row.split == DatasetRow.Split.HELDOUT)
        version.pair_count += sum(len(_pairs(row.response, row.original, row.rejected)) for row in rows)
    return skipped, nearest


def _final_reviews(prompt_ids: list[int]) -> dict[int, Review]:
    reviews = (
        Review.objects.filter(prompt_id__in=prompt_ids, decision=Review.Decision.APPROVE, superseded=False)
        .select_related("chosen")
        .order_by("prompt_id", "-is_adjudication", "-updated_at", "-id")
    )
    final: dict[int, Review] = {}
    for review in reviews:
        final.setdefault(review.prompt_id, review)
    return final


def _completions(prompt_ids: list[int]) -> dict[int, list[Completion]]:
    grouped: dict[int, list[Completion]] = {}
    for completion in Completion.objects.filter(prompt_id__in=prompt_ids).only("id", "prompt_id", "text", "source"):
        grouped.setdefault(completion.prompt_id, []).append(completion)
    return grouped


def _row(version, prompt: Prompt, review: Review | None, completions: list[Completion], system: str):
    """The frozen row of one prompt, or None when its review gives no answer."""
    if review is None:
        return None
    by_id = {c.id: c for c in completions}
    ranking = [by_id[i] for i in review.ranking if isinstance(i, int) and i in by_id]
    chosen = review.chosen or (ranking[0] if ranking else None) or (completions[0] if len(completions) == 1 else None)
    original = chosen.text if chosen else ""
    response = review.edited_text or original
    if not response.strip():
        return None
    if chosen is not None and chosen in ranking:
        worse = ranking[ranking.index(chosen) + 1:]
    else:  # no usable ranking: every other candidate lost to the chosen one
        worse = [c for c in completions if c != chosen]
    rejected = list(dict.fromkeys(c.text for c in worse if c.text != response))
    messages = list(prompt.messages)
    if system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return DatasetRow(
        version=version, prompt_id=prompt.id, messages=messages, response=response, original=original, rejected=rejected,
        source=chosen.source if chosen else "edited",
        metadata={
            "review_id": review.id, "completion_id": chosen.id if chosen else None,
            "edited": bool(review.edited_text) and review.edited_text != original,
            "external_id": prompt.external_id, "prompt": prompt.metadata,
        },
    )


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


def _content_hash(version: DatasetVersion) -> str:
    digest = hashlib.sha256()
    fields = ("split", "messages", "response", "original", "rejected")
    for values in version.rows.order_by("position").values_list(*fields).iterator(chunk_size=CHUNK):
        digest.update(_line(list(values)))
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
