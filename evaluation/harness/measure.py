"""Size and speed of one model, measured on the requests lm-eval already makes.

Timing hooks wrap lm-eval's own generation calls instead of running a second
generation pass: the speed figures cost nothing extra and come from exactly the
prompts, batch size and generation settings that produced the scores.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Measurements, ModelSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")

# (request type, rows done in this call, rows of this type in total)
Tick = Callable[[str, int, int], None]


def size_on_disk(spec: ModelSpec) -> int | None:
    """Bytes of weights on disk (the whole folder if no weight file is recognised)."""
    if spec.is_api:
        return None
    path = Path(spec.path)
    if path.is_file():
        return path.stat().st_size
    files = [p for p in path.rglob("*") if p.is_file()]
    weights = [p for p in files if p.name.endswith(WEIGHT_SUFFIXES)]
    return sum(p.stat().st_size for p in (weights or files))


def parameter_count(lm: Any) -> int | None:
    model = getattr(lm, "model", None)
    if model is None or not hasattr(model, "parameters"):
        return None
    # parameters() yields tied weights once, so embeddings shared with the head count once.
    return int(sum(p.numel() for p in model.parameters()))


class GenerationMeter:
    """Times every generation batch and attributes it to the task it belongs to."""

    def __init__(self, lm: Any, tick: Tick | None = None) -> None:
        self.lm = lm
        self.tick = tick or (lambda kind, done, total: None)
        self.batch_seconds: dict[str, list[float]] = defaultdict(list)
        self.tokens: dict[str, int] = defaultdict(int)
        self.prompts: dict[str, int] = defaultdict(int)
        self._task_of_context: dict[str, str] = {}
        self._batch_task = ""
        self._totals: dict[str, int] = {}

    def install(self) -> None:
        self._wrap_request_type("generate_until")
        self._wrap_request_type("loglikelihood")
        self._wrap_request_type("loglikelihood_rolling")
        if hasattr(self.lm, "_model_generate"):
            self._wrap_hf_generate()
        if hasattr(self.lm, "_model_call"):
            self._wrap_hf_forward()

    def _wrap_request_type(self, kind: str) -> None:
        original = getattr(self.lm, kind)
        is_hf = hasattr(self.lm, "_model_generate")

        def wrapped(requests, *args, **kwargs):
            self._totals[kind] = len(requests)
            if kind == "generate_until":
                for req in requests:
                    self._task_of_context[req.args[0]] = req.task_name
            started = time.perf_counter()
            out = original(requests, *args, **kwargs)
            if kind == "generate_until" and not is_hf:
                # API models: no batches to see, one figure for the whole call.
                task, n = (requests[0].task_name, len(requests)) if requests else ("", 1)
                # Requests go one at a time: spread the wall time evenly to get per-request latency.
                self.batch_seconds[task].extend([(time.perf_counter() - started) / n] * n)
                self.prompts[task] += len(requests)
                self.tick(kind, len(requests), len(requests))
            return out

        setattr(self.lm, kind, wrapped)

    def _wrap_hf_generate(self) -> None:
        lm = self.lm
        encode, generate = lm.tok_batch_encode, lm._model_generate
        stop_ids = {lm.eot_token_id, getattr(lm.tokenizer, "pad_token_id", None)} - {None}

        def tok_batch_encode(strings, *args, **kwargs):
            # Requests are grouped by generation settings, so a batch holds one task.
            self._batch_task = self._task_of_context.get(strings[0], "") if strings else ""
            return encode(strings, *args, **kwargs)

        def model_generate(context, *args, **kwargs):
            started = time.perf_counter()
            out = generate(context, *args, **kwargs)
            seconds = time.perf_counter() - started
            new = out[:, context.shape[1] :].tolist()
            task = self._batch_task
            self.batch_seconds[task].append(seconds)
            self.prompts[task] += len(new)
            self.tokens[task] += sum(_generated_length(row, stop_ids) for row in new)
            self.tick("generate_until", len(new), self._totals.get("generate_until", 0))
            return out

        lm.tok_batch_encode, lm._model_generate = tok_batch_encode, model_generate

    def _wrap_hf_forward(self) -> None:
        call = self.lm._model_call

        def model_call(inps, *args, **kwargs):
            out = call(inps, *args, **kwargs)
            self.tick("loglikelihood", int(inps.shape[0]), self._totals.get("loglikelihood", 0))
            return out

        self.lm._model_call = model_call

    def measurements(self, prefer_task: str, batch_size: int) -> Measurements:
        task = prefer_task if prefer_task in self.batch_seconds else next(iter(self.batch_seconds), "")
        seconds = self.batch_seconds.get(task, [])
        total = sum(seconds)
        tokens = self.tokens.get(task) if task in self.tokens else None
        return Measurements(
            batch_size=batch_size,
            prompts=self.prompts.get(task, 0),
            generated_tokens=tokens,
            generate_seconds=round(total, 4),
            tokens_per_second=round(tokens / total, 3) if tokens and total else None,
            batch_latency_s_mean=round(statistics.fmean(seconds), 4) if seconds else None,
            batch_latency_s_p50=round(statistics.median(seconds), 4) if seconds else None,
            measured_on=task,
        )


def _generated_length(row: list[int], stop_ids: set[int]) -> int:
    """Tokens a row really generated: up to and including its first end token."""
    for i, token in enumerate(row):
        if token in stop_ids:
            return i + 1
    return len(row)
