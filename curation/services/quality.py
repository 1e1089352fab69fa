"""Quality signals computed on import, stored as Flag rows (usable as browse filters and bulk rules).

Per text: truncated (finish reason "length"), repetition (most word 3-grams repeat), refusal phrases, empty or
very short. Across the project: near-duplicate prompts and near-duplicate completions, found with MinHash and
locality-sensitive hashing. The LSH band keys are stored (``SimilarityKey``), so every batch is compared with
all earlier ones through an index lookup, and each candidate pair is confirmed by its exact Jaccard similarity.

MinHash is written here with numpy rather than taken from datasketch: one vectorised pass per batch
hashes every shingle of every text at once, which is what keeps this cheap enough to run after each
import batch; the hashes must also be stable across processes (Python's ``hash`` is salted), hence crc32.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from django.db import connection, transaction
from django.db.models import F, Sum

from curation.bulk import array_text, insert_rows
from curation.jobs import services as jobs
from curation.models import Completion, Flag, ImportJob, JobStatus, PendingFlag, Prompt, QualityFlagJob, SimilarityKey
from curation.services.search import search_documents_build

AUTO_KINDS = ("truncated", "repetition", "refusal", "empty", "short", "near-duplicate")
BANDS, ROWS = 8, 4  # 32 hash functions; pairs above ~0.6 Jaccard become candidates, confirmed at THRESHOLD
THRESHOLD = 0.8
MIN_WORDS_FOR_DUPLICATES = 6  # below this, shingles are too few for similarity to mean anything
CHUNK = 1000  # prompts per transaction (and per key lookup) when flagging
SLICE_SHINGLES = 100_000  # shingles hashed at once: 100,000 x 32 hashes of 8 bytes = 26 MB
_rng = np.random.default_rng(20240611)  # fixed: keys stored yesterday must match keys computed today
_A = _rng.integers(1, 2**63, size=BANDS * ROWS, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, size=BANDS * ROWS, dtype=np.uint64)
_WORD = re.compile(r"\w+", re.UNICODE)
REFUSAL = re.compile(
    r"\b(i'?m sorry,? but|i am sorry,? but|i apologi[sz]e,? but|i can(?:'|no)?t (?:help|assist|provide|comply|do that)"
    r"|i(?: am|'m) (?:not able|unable) to|as an ai(?: language model)?|i cannot fulfill|i won'?t be able to)",
    re.IGNORECASE,
)


def text_flags(text: str, *, finish_reason: str = "") -> list[tuple[str, str]]:
    """(kind, detail) signals of one text, from the text alone."""
    flags: list[tuple[str, str]] = []
    words = _WORD.findall(text.lower())
    if finish_reason == Completion.FinishReason.LENGTH:
        flags.append(("truncated", "stopped at the token limit"))
    if not text.strip():
        return [*flags, ("empty", "no text")]
    if len(words) < 3 or len(text.strip()) < 10:
        flags.append(("short", f"{len(words)} words"))
    if len(words) >= 20:
        grams = list(zip(words, words[1:], words[2:]))
        repeated = 1 - len(set(grams)) / len(grams)
        if repeated >= 0.5:
            flags.append(("repetition", f"{repeated:.0%} of 3-word sequences repeat"))
    match = REFUSAL.search(text[:2000])
    if match:
        flags.append(("refusal", f"“{match.group(0)}”"))
    return flags


@lru_cache(maxsize=500_000)
def _word_hash(word: str) -> int:
    return zlib.crc32(word.encode("utf-8"))


def shingles(text: str) -> np.ndarray:
    """32-bit hashes of the text's word 3-grams (stable across processes)."""
    words = np.fromiter((_word_hash(w) for w in _WORD.findall(text.lower())), dtype=np.uint64)
    if len(words) < 3:
        return words
    mixed = words[:-2] * np.uint64(0x9E3779B1) + words[1:-1] * np.uint64(0x85EBCA77) + words[2:]
    return np.unique(mixed & np.uint64(0xFFFFFFFF))


def band_keys(shingle_hashes: np.ndarray) -> list[int]:
    """One LSH key per band: the band's slice of the MinHash signature, hashed with its band number."""
    return band_keys_many([shingle_hashes])[0]


def band_keys_many(sets: list[np.ndarray]) -> list[list[int]]:
    """``band_keys`` of many non-empty shingle sets, vectorised: the sets are concatenated (at most
    SLICE_SHINGLES at a time, so memory stays bounded whatever the texts' length), hashed with every hash function
    in one product, and each set's signature is the minimum over its segment (``np.minimum.reduceat``)."""
    keys: list[list[int]] = []
    start = 0
    while start < len(sets):
        end, size = start, 0
        while end < len(sets) and (end == start or size + len(sets[end]) <= SLICE_SHINGLES):
            size += len(sets[end])
            end += 1
        part = sets[start:end]
        flat = np.concatenate(part)
        hashed = (flat[:, None] * _A[None, :] + _B[None, :]) >> np.uint64(32)  # multiply-shift hashing
        offsets = np.cumsum([0] + [len(s) for s in part[:-1]])
        signatures = np.minimum.reduceat(hashed, offsets, axis=0).astype(np.uint32)
        keys += [[_band_key(signature, band) for band in range(BANDS)] for signature in signatures]
        start = end
    return keys


def _band_key(signature: np.ndarray, band: int) -> int:
    digest = hashlib.blake2b(signature[band * ROWS:(band + 1) * ROWS].tobytes(), digest_size=8,
                             person=bytes([band]) * 8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) or not len(b):
        return 0.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def quality_flag_prompts(prompt_ids: Iterable[int]) -> int:
    """(Re)compute the automatic flags of these prompts and their completions; returns the flags written.

    Idempotent: earlier automatic flags and similarity keys of the same prompts are replaced, other flags
    (evaluation regressions, curators' own) are left alone. Call it after each import or generation batch.
    """
    ids = sorted(set(prompt_ids))
    with closing(prepared_ahead([ids[start:start + CHUNK] for start in range(0, len(ids), CHUNK)])) as chunks:
        return sum(_store(chunk) for chunk in chunks)


@dataclass
class _Prepared:
    """A chunk's per-text work, done before its transaction: the text flags, and each text long enough to compare
    as (ref, project, prompt, completion, shingle hashes, band keys), ``ref`` being (kind, id)."""

    ids: list[int]
    flags: list[tuple]  # FLAG_FIELDS
    docs: list[tuple]


def prepared_ahead(chunks: list[list[int]]) -> Iterator[_Prepared]:
    """The chunks of prompt ids prepared in order, each one's text work done in a thread while the caller stores
    the one before: the text work is Python and numpy, the store mostly waits for the database, so on two cores
    they overlap (the follow-up job of an import, 20,000 prompts: about 16 s -> 13 s). Rows are read here, in the
    caller's thread and connection; the thread touches no database."""
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flags-ahead") as pool:
        pending = pool.submit(_prepare, chunks[0], *_read(chunks[0]))
        for ids in chunks[1:]:
            rows = _read(ids)
            done = pending.result()
            pending = pool.submit(_prepare, ids, *rows)
            yield done
        yield pending.result()


def _read(ids: list[int]) -> tuple[list[tuple], list[tuple]]:
    prompts = list(Prompt.objects.filter(id__in=ids).values_list("id", "project_id", "messages", "text"))
    completions = list(Completion.objects.filter(prompt_id__in=ids).values_list("id", "prompt_id", "text", "finish_reason"))
    return prompts, completions


def _prepare(ids: list[int], prompts: list[tuple], completions: list[tuple]) -> _Prepared:
    flags: list[tuple] = []
    texts: list[tuple] = []  # ref, project, prompt, completion, text
    project_of = {}
    for prompt_id, project_id, messages, prompt_text in prompts:
        text = _prompt_text(messages, prompt_text)
        flags += [(prompt_id, None, k, d) for k, d in text_flags(text) if k in ("empty", "short")]
        texts.append(((PROMPT, prompt_id), project_id, prompt_id, None, text))
        project_of[prompt_id] = project_id
    for completion_id, prompt_id, text, finish_reason in completions:
        flags += [(prompt_id, completion_id, k, d) for k, d in text_flags(text, finish_reason=finish_reason)]
        texts.append(((COMPLETION, completion_id), project_of[prompt_id], prompt_id, completion_id, text))
    kept = []
    for ref, project_id, prompt_id, completion_id, text in texts:
        hashed = shingles(text)
        if len(hashed) >= MIN_WORDS_FOR_DUPLICATES - 2:
            kept.append((ref, project_id, prompt_id, completion_id, hashed))
    keys = band_keys_many([doc[-1] for doc in kept])
    return _Prepared(ids, flags, [(*doc, doc_keys) for doc, doc_keys in zip(kept, keys, strict=True)])


def _store(chunk: _Prepared) -> int:
    """Replace the chunk's automatic flags and similarity keys, in one transaction; returns the flags written."""
    with transaction.atomic():
        live = _live(chunk.ids)  # deleted since they were read: skipped (and held until commit, see _live)
        Flag.objects.filter(prompt_id__in=chunk.ids, kind__in=AUTO_KINDS).delete()
        SimilarityKey.objects.filter(prompt_id__in=chunk.ids).delete()
        flags = [f for f in chunk.flags if f[0] in live]
        flags += _near_duplicates([doc for doc in chunk.docs if doc[2] in live])
        insert_rows(Flag, FLAG_FIELDS, flags, ignore_conflicts=False)
    return len(flags)


def _live(ids: list[int]) -> set[int]:
    """Which of these prompts still exist, each kept from deletion until the transaction ends (FOR KEY SHARE: a
    review may still update it); SQLite's write lock, held since BEGIN, does the same there."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM curation_prompt WHERE id = ANY(%s::bigint[]) FOR KEY SHARE", [array_text(ids)])
            return {row[0] for row in cursor.fetchall()}
    return set(Prompt.objects.filter(id__in=ids).values_list("id", flat=True))


FLAG_FIELDS = ("prompt", "completion", "kind", "detail")
# The kinds as plain strings: the hand-written COPY (curation.bulk) takes only plain values, a choices member
# would send all 8 rows per text through the driver's slower path.
PROMPT, COMPLETION = SimilarityKey.Kind.PROMPT.value, SimilarityKey.Kind.COMPLETION.value
KEY_FIELDS = ("project", "kind", "key", "prompt", "completion")


def _prompt_text(messages, text: str) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict)) or text


def _near_duplicates(docs: list[tuple]) -> list[tuple]:
    """Store the docs' band keys and flag each doc that nearly repeats an earlier one (lower id)."""
    sets, keys_of, prompt_of, rows = {}, {}, {}, []
    groups: dict[tuple[int, str], list[tuple[str, int]]] = defaultdict(list)
    for ref, project_id, prompt_id, completion_id, hashed, keys in docs:
        sets[ref], keys_of[ref], prompt_of[ref] = hashed, keys, prompt_id
        groups[(project_id, ref[0])].append(ref)
        rows += [(project_id, ref[0], k, prompt_id, completion_id) for k in keys]
    candidates: dict[tuple[str, int], set[int]] = defaultdict(set)
    for (project_id, kind), refs in groups.items():
        holders: dict[int, set[int]] = defaultdict(set)
        for key, prompt_id, completion_id in _key_holders(project_id, kind, {k for ref in refs for k in keys_of[ref]}):
            holders[key].add(completion_id or prompt_id)
        # This batch's own keys are matched here, before they are stored: looked up after, every probe would
        # find (and read from the table) at least the doc's own rows; before, most probes find nothing.
        for ref in refs:
            for key in keys_of[ref]:
                holders[key].add(ref[1])
        for ref in refs:
            for key in keys_of[ref]:
                candidates[ref] |= {other for other in holders[key] if other < ref[1]}
    insert_rows(SimilarityKey, KEY_FIELDS, rows, ignore_conflicts=False)
    return _confirmed(candidates, sets, prompt_of)


def _key_holders(project_id: int, kind: str, keys: set[int]) -> list[tuple[int, int, int | None]]:
    """(key, prompt, completion) of the project's stored keys among ``keys``."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT key, prompt_id, completion_id FROM {SimilarityKey._meta.db_table} "  # noqa: S608
                "WHERE project_id = %s AND kind = %s AND key = ANY(%s::bigint[])", [project_id, kind, array_text(keys)])
            return cursor.fetchall()
    return list(SimilarityKey.objects.filter(project_id=project_id, kind=kind, key__in=keys)
                .values_list("key", "prompt_id", "completion_id"))


def _confirmed(candidates, sets, prompt_of) -> list[tuple]:
    """Flags for candidate pairs whose exact Jaccard similarity reaches THRESHOLD (the nearest one is named)."""
    needed = {(ref[0], other) for ref, others in candidates.items() for other in others if (ref[0], other) not in sets}
    for kind in (SimilarityKey.Kind.PROMPT, SimilarityKey.Kind.COMPLETION):
        wanted = [other for k, other in needed if k == kind]
        if kind == SimilarityKey.Kind.PROMPT:
            rows = Prompt.objects.filter(id__in=wanted).values_list("id", "messages", "text")
            texts = {i: _prompt_text(messages, text) for i, messages, text in rows}
        else:
            texts = dict(Completion.objects.filter(id__in=wanted).values_list("id", "text"))
        sets.update({(kind, i): shingles(t) for i, t in texts.items()})
    flags = []
    for ref, others in candidates.items():
        scored = [(jaccard(sets[ref], sets[(ref[0], o)]), o) for o in others if (ref[0], o) in sets]
        best = max(scored, default=(0.0, None))
        if best[0] >= THRESHOLD:
            what = "prompt" if ref[0] == SimilarityKey.Kind.PROMPT else "completion"
            flags.append((prompt_of[ref], None if what == "prompt" else ref[1], "near-duplicate",
                          f"{best[0]:.0%} similar to {what} #{best[1]}"))
    return flags


# --- the follow-up job of an import: search documents (PostgreSQL) and quality flags ----------------------


def quality_flags_follow_up(*, import_job: ImportJob, inline: bool) -> QualityFlagJob | None:
    """Flag the prompts ``import_job`` marked, after its commits: in this process now (``inline``: the command,
    which holds its own job) or on a worker. None when nothing is left to flag; an active follow-up job of the
    same import picks up new marks by itself."""
    pending = PendingFlag.objects.filter(import_job=import_job).aggregate(n=Sum("size"))["n"] or 0
    if not pending:
        return None
    active = import_job.flag_jobs.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).first()
    if active is not None:
        return active
    with transaction.atomic():
        flag_job = QualityFlagJob.objects.create(import_job=import_job, total=pending)
        if not inline:
            jobs.job_enqueue(flag_job)
    if inline:
        quality_flag_job_run(job_id=flag_job.pk)
        flag_job.refresh_from_db()
    return flag_job


def quality_flag_job_run(*, job_id: int) -> str | None:
    """The worker's task: flag the marked prompts in id order, a chunk per transaction with its progress."""
    return jobs.job_run(QualityFlagJob, job_id, _flag_pending)


def _flag_pending(job: QualityFlagJob) -> str:
    """Each mark's prompts, a CHUNK per transaction with the removal of their ids from the mark (a resumed
    attempt redoes none), the next chunk's text work done while this one is stored (``prepared_ahead``).
    Marks an import adds meanwhile are taken in the next round."""
    marks = PendingFlag.objects.filter(import_job_id=job.import_job_id)
    while plan := [(pk, ids[start:start + CHUNK], ids[start + CHUNK:])
                   for pk, ids in marks.order_by("pk").values_list("pk", "prompt_ids")
                   for start in range(0, len(ids), CHUNK)]:
        with closing(prepared_ahead([ids for _, ids, _ in plan])) as chunks:
            for (pk, ids, rest), chunk in zip(plan, chunks, strict=True):
                with transaction.atomic():
                    search_documents_build(ids)  # deleted prompts have no document to build
                    _store(chunk)
                    if rest:
                        marks.filter(pk=pk).update(prompt_ids=rest, size=len(rest))
                    else:
                        marks.filter(pk=pk).delete()
                    if not jobs.job_beat(QualityFlagJob, job.pk, done=F("done") + len(ids)):
                        return JobStatus.CANCELLED
    return JobStatus.SUCCEEDED
