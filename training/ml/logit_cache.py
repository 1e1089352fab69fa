"""Offline teacher logits: the teacher's top-k log-probabilities at every reply token, computed once.

Logit distillation with a live teacher runs the teacher's forward pass at every step (measured 3x the cost of
SFT per step on the demo). The teacher's answer to a fixed dataset never changes, so we compute it once per
(dataset file, teacher, k) and train from disk with no teacher in memory.

Layout of a cache folder (the DistillKit idea, in safetensors shards):

    manifest.json           teacher, k, dtype, train file hash, tokenizer hash, examples, tokens, shards, hash
    shard-00000.safetensors values (tokens, k) fp16 log-probs, indices (tokens, k) int32,
                            rows (examples,) int64 (export line numbers), offsets (examples + 1,) int64

Values are log-softmax over the full vocabulary at temperature 1, keeping the k largest. At training temperature
T the teacher's distribution restricted to its top k is softmax(values / T): dividing log-probs by T differs
from dividing logits by T by a constant per row, which the softmax removes. With k = the vocabulary this is
exactly the live teacher's tempered distribution.

A remote teacher (an OpenAI-compatible server that scores prompts, e.g. vLLM) fills the same shards: it is sent
each example's token ids and answers teacher-forced top-k log-probabilities per position (`remote_scorer`).

Shards are written one by one and listed in the manifest only when complete, so an interrupted build resumes at
the first missing shard (the manifest is rewritten after each one, with "complete": false until the end).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.ml.data import IGNORE, read_jsonl, tokenize_sft

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
Progress = Callable[[float, str], None]
StopFn = Callable[[], bool]


class CacheMismatch(ValueError):
    """The cache was built for other data, another tokenizer or another tokenization."""


@dataclass
class CacheManifest:
    teacher: str
    top_k: int
    train_file_sha256: str
    tokenizer_sha256: str
    max_seq_len: int
    examples: int = 0
    tokens: int = 0
    dtype: str = "float16"
    format_version: int = FORMAT_VERSION
    shards: list[dict[str, Any]] = field(default_factory=list)  # name, examples, tokens, bytes, sha256
    complete: bool = False
    size_bytes: int = 0
    sha256: str = ""  # over the shards' hashes, in order: the identity of the cache's content
    seconds: float = 0.0
    remote: bool = False  # filled by an OpenAI-compatible server's prompt log-probs, not a local forward pass
    server: str = ""  # the remote teacher as "model @ base URL"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, folder: Path | str) -> CacheManifest:
        return cls(**json.loads((Path(folder) / MANIFEST).read_text()))

    def save(self, folder: Path | str) -> None:
        path = Path(folder) / MANIFEST
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        partial.replace(path)


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_sha256(tokenizer: Any) -> str:
    """Vocabulary and chat template: what decides the token ids a cache lines up with."""
    vocab = sorted(tokenizer.get_vocab().items())
    text = json.dumps([vocab, tokenizer.chat_template or ""], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def tokenize_rows(path: Path | str, tokenizer: Any, max_len: int) -> list[dict[str, Any]]:
    """The training examples, each with `row`: its line number among the file's rows."""
    examples, _ = tokenize_sft(read_jsonl(path), tokenizer, max_len)
    return examples


DTYPES = ("float16", "float32")


def teacher_topk(logits: Any, top_k: int, dtype: str = "float16") -> tuple[Any, Any]:
    """(values log-probs in `dtype`, indices int32) of the k most likely tokens per row."""
    import torch

    log_probs = torch.log_softmax(logits.float(), dim=-1)
    k = min(top_k, log_probs.shape[-1])
    values, indices = log_probs.topk(k, dim=-1)
    return values.to(getattr(torch, dtype)), indices.to(torch.int32)


def _write_shard(folder: Path, number: int, parts: list[tuple[int, Any, Any]]) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    counts = [values.shape[0] for _, values, _ in parts]
    offsets = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()], dtype=torch.int64)
    tensors = {
        "values": torch.cat([v for _, v, _ in parts]).contiguous(),
        "indices": torch.cat([i for _, _, i in parts]).contiguous(),
        "rows": torch.tensor([row for row, _, _ in parts], dtype=torch.int64),
        "offsets": offsets,
    }
    name = f"shard-{number:05d}.safetensors"
    partial = folder / (name + ".part")
    save_file(tensors, str(partial))
    partial.replace(folder / name)
    path = folder / name
    return {
        "name": name,
        "examples": len(parts),
        "tokens": int(offsets[-1]),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


Scorer = Callable[[list[dict[str, Any]]], list[tuple[Any, Any]]]
"""Examples in, per example (values, indices) at its reply positions out, in order."""


def reply_positions(example: dict[str, Any]) -> Any:
    """Positions whose next token is a reply token: position i predicts token i + 1."""
    import torch

    labels = torch.tensor(example["labels"])
    return (labels[1:] != IGNORE).nonzero().squeeze(1)


def local_scorer(teacher: Any, tokenizer: Any, top_k: int, dtype: str) -> Scorer:
    """A forward pass of a local teacher, a padded batch at a time."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    teacher.eval()

    def score(chunk: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
        width = max(len(e["input_ids"]) for e in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, example in enumerate(chunk):
            ids[row, : len(example["input_ids"])] = torch.tensor(example["input_ids"])
            mask[row, : len(example["input_ids"])] = 1
        with torch.inference_mode():
            logits = teacher(input_ids=ids, attention_mask=mask, use_cache=False).logits
        return [teacher_topk(logits[row, reply_positions(e)], top_k, dtype) for row, e in enumerate(chunk)]

    return score


def token_id_mapper(tokenizer: Any) -> Callable[[int | str], int]:
    """A server's token (an id, "token_id:N", a vocabulary entry, or its decoded text) as our tokenizer's id."""
    vocab = tokenizer.get_vocab()
    decoded: dict[str, int | None] = {}

    def to_id(token: int | str) -> int:
        if isinstance(token, int):
            return token
        if token.startswith("token_id:") and token[9:].isdigit():
            return int(token[9:])
        if token in vocab:
            return vocab[token]
        if not decoded:  # decoded text is ambiguous when two ids decode alike: those map to None and refuse
            for token_id in range(len(tokenizer)):
                text = tokenizer.decode([token_id])
                decoded[text] = None if text in decoded else token_id
        found = decoded.get(token)
        if found is None:
            raise CacheMismatch(f"the server's token {token!r} is not one token of the teacher's tokenizer: "
                                "the server runs another tokenizer")
        return found

    return to_id


def remote_scorer(client: Any, tokenizer: Any, top_k: int, dtype: str) -> Scorer:
    """Prompt log-probabilities from a server (``client.prompt_logprobs(list of id lists, k)``) as cache rows.

    The server is sent our token ids, so it scores our tokenization; it must answer one entry per position and
    at least k tokens at each, or the cache would not line up with training and is refused.
    """
    import torch

    to_id = token_id_mapper(tokenizer)

    def score(chunk: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
        answers = client.prompt_logprobs([e["input_ids"] for e in chunk], top_k)
        out = []
        for example, entries in zip(chunk, answers, strict=True):
            length = len(example["input_ids"])
            if len(entries) != length:
                raise CacheMismatch(
                    f"row {example['row']}: the server scored {len(entries)} positions of a {length}-token example: "
                    "its tokenizer disagrees with the teacher's tokenizer named here")
            values, indices = [], []
            for position in reply_positions(example).tolist():
                entry = entries[position + 1]
                if not entry or len(entry) < top_k:
                    raise CacheMismatch(
                        f"row {example['row']}: the server returned {len(entry or {})} log-probabilities at a "
                        f"position, not {top_k}; lower top_k or raise the server's limit (vLLM: --max-logprobs)")
                # vLLM adds the prompt's own token when it is outside the top k: keep the k largest.
                best = sorted(((lp, to_id(token)) for token, lp in entry.items()), key=lambda p: -p[0])[:top_k]
                values.append([lp for lp, _ in best])
                indices.append([token_id for _, token_id in best])
            shape = (len(values), top_k)
            out.append((torch.tensor(values, dtype=torch.float32).reshape(shape).to(getattr(torch, dtype)),
                        torch.tensor(indices, dtype=torch.int32).reshape(shape)))
        return out

    return score


def build_logit_cache(
    teacher: Any,
    tokenizer: Any,
    train_file: Path | str,
    folder: Path | str,
    *,
    teacher_name: str,
    top_k: int = 32,
    max_seq_len: int = 1024,
    batch_size: int = 4,
    shard_examples: int = 256,
    dtype: str = "float16",
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
    remote_client: Any = None,
    server: str = "",
) -> CacheManifest:
    """Compute (or finish) the cache for `train_file` in `folder`; returns the manifest.

    `teacher` is a local causal LM, or None with `remote_client` (an OpenAI-compatible client that scores prompts,
    batch_size requests per round) and `server` (what the manifest records).

    `should_stop` is asked between batches; a stopped build keeps its complete shards and resumes from them.
    """

    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}")
    started = time.monotonic()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = CacheManifest(
        teacher=teacher_name,
        top_k=min(top_k, int(teacher.config.vocab_size) if teacher is not None else len(tokenizer)),
        train_file_sha256=sha256_file(train_file),
        tokenizer_sha256=tokenizer_sha256(tokenizer),
        max_seq_len=max_seq_len,
        dtype=dtype,
        remote=remote_client is not None,
        server=server,
    )
    if (folder / MANIFEST).exists():
        old = CacheManifest.load(folder)
        keys = ("teacher", "top_k", "train_file_sha256", "tokenizer_sha256", "max_seq_len", "dtype", "remote", "server")
        same = all(getattr(old, key) == getattr(manifest, key) for key in keys)
        if same and old.complete:
            return old
        if same:
            manifest.shards = old.shards
            manifest.seconds = old.seconds
    examples = tokenize_rows(train_file, tokenizer, max_seq_len)
    done = sum(shard["examples"] for shard in manifest.shards)
    report = progress or (lambda fraction, message: None)
    if remote_client is not None:
        score = remote_scorer(remote_client, tokenizer, manifest.top_k, dtype)
    else:
        score = local_scorer(teacher, tokenizer, manifest.top_k, dtype)
    parts: list[tuple[int, Any, Any]] = []
    for start in range(done, len(examples), batch_size):
        if should_stop and should_stop():
            manifest.seconds += time.monotonic() - started
            manifest.save(folder)
            return manifest
        chunk = examples[start : start + batch_size]
        for example, (values, indices) in zip(chunk, score(chunk), strict=True):
            parts.append((example["row"], values, indices))
        finished = start + len(chunk)
        if len(parts) >= shard_examples or finished == len(examples):
            manifest.shards.append(_write_shard(folder, len(manifest.shards), parts))
            parts = []
            manifest.save(folder)
        report(finished / len(examples), f"{finished}/{len(examples)} examples")
    manifest.examples = sum(s["examples"] for s in manifest.shards)
    manifest.tokens = sum(s["tokens"] for s in manifest.shards)
    manifest.size_bytes = sum(s["bytes"] for s in manifest.shards)
    manifest.sha256 = hashlib.sha256("".join(s["sha256"] for s in manifest.shards).encode()).hexdigest()
    manifest.seconds = round(manifest.seconds + time.monotonic() - started, 3)
    manifest.complete = True
    manifest.save(folder)
    return manifest


class LogitCache:
    """A complete cache read into memory: the teacher's top-k for one export line, by line number."""

    def __init__(self, folder: Path | str) -> None:
        from safetensors.torch import load_file

        self.folder = Path(folder)
        self.manifest = CacheManifest.load(self.folder)
        if not self.manifest.complete:
            raise CacheMismatch(f"the logit cache in {self.folder} is not complete")
        self._entries: dict[int, tuple[Any, Any]] = {}
        for shard in self.manifest.shards:
            tensors = load_file(str(self.folder / shard["name"]))
            offsets = tensors["offsets"].tolist()
            for n, row in enumerate(tensors["rows"].tolist()):
                lo, hi = offsets[n], offsets[n + 1]
                self._entries[row] = (tensors["values"][lo:hi], tensors["indices"][lo:hi])

    def check(self, train_file: Path | str, tokenizer: Any, max_seq_len: int) -> None:
        """Refuse a cache made for another file, tokenizer or truncation: its tokens would not line up."""
        m = self.manifest
        if m.train_file_sha256 != sha256_file(train_file):
            raise CacheMismatch("the logit cache was built for a different training file")
        if m.tokenizer_sha256 != tokenizer_sha256(tokenizer):
            raise CacheMismatch("the logit cache was built with a different tokenizer")
        if m.max_seq_len != max_seq_len:
            raise CacheMismatch(f"the logit cache was built with max_seq_len {m.max_seq_len}, not {max_seq_len}")

    def lookup(self, row: int, targets: int) -> tuple[Any, Any]:
        values, indices = self._entries[row]
        if values.shape[0] != targets:
            raise CacheMismatch(f"row {row}: the cache holds {values.shape[0]} reply tokens, the batch {targets}")
        return values, indices


def cached_divergence(
    student_logits: Any, values: Any, indices: Any, *, temperature: float, beta: float,
    student_log_probs: Any = None,
) -> Any:
    """Per-token divergence between the student and the cached teacher top-k (rows = reply tokens).

    beta = 0 (forward KL): sum over the teacher's top k of p_t (log p_t - log p_s), with p_t renormalised over
    its k tokens and log p_s the student's full-vocabulary log-probability, so mass the student puts outside
    the teacher's top k is still paid for. beta > 0 (reverse KL, JSD) needs the student's distribution where
    the teacher has no value: both sides are renormalised over the teacher's top k. With k = the vocabulary
    both are exactly the live divergence of training.ml.trainers.divergence.
    """
    import torch.nn.functional as F

    from training.ml.trainers import divergence_from_log_probs

    t = F.log_softmax(values.float() / temperature, dim=-1)
    idx = indices.long()
    if beta == 0.0:
        # student_log_probs: the caller's log-softmax at temperature 1, reused instead of recomputed.
        full = student_log_probs if student_log_probs is not None and temperature == 1.0 else None
        if full is None:
            full = F.log_softmax(student_logits.float() / temperature, dim=-1)
        s = full.gather(-1, idx)
        return (t.exp() * (t - s)).sum(-1)
    s = F.log_softmax(student_logits.float().gather(-1, idx) / temperature, dim=-1)
    return divergence_from_log_probs(s, t, beta=beta)



class CachedLogitsCollator:
    """Wraps the causal-LM collator: adds the teacher's cached top-k for the batch's reply tokens, in the order
    the loss visits them (example by example, position by position), as `teacher_values`/`teacher_indices`."""

    def __init__(self, base: Any, cache: LogitCache) -> None:
        self.base = base
        self.cache = cache

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.base(examples)
        values, indices = [], []
        for example in examples:
            targets = sum(1 for label in example["labels"][1:] if label != IGNORE)
            v, i = self.cache.lookup(example["row"], targets)
            values.append(v)
            indices.append(i)
        batch["teacher_values"] = torch.cat(values)
        batch["teacher_indices"] = torch.cat(indices)
        return batch
