"""Honest generation speed: every row generates exactly the same number of tokens, and those are counted.

Counting tokens up to each row's first end-of-turn while timing every decoding step makes a student that never
stops look fast (measured: 5.5x reported vs 2.2-2.4x real). Here `min_new_tokens = max_new_tokens`, so no row
stops early, the token count is batch x new tokens, and the time covers exactly those tokens. Batch 1 gives
latency; batch N gives throughput. Threads follow the one rule of curation.teachers.threads.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SpeedPoint:
    batch_size: int
    new_tokens: int
    repeats: int
    latency_s: float  # median seconds per generate call (prefill + new_tokens steps)
    latency_s_min: float
    tokens_per_second: float  # batch_size * new_tokens / latency_s
    prompt_tokens: int  # longest prompt of the batch


@dataclass
class Speed:
    threads: int
    device: str
    points: list[SpeedPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def point(self, batch_size: int) -> SpeedPoint | None:
        return next((p for p in self.points if p.batch_size == batch_size), None)


def _encode(tokenizer: Any, prompts: list[str], batch_size: int) -> dict[str, Any]:
    rows = [prompts[i % len(prompts)] for i in range(batch_size)]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # right padding would make rows continue after pad tokens
    try:
        return tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side


def render_prompts(tokenizer: Any, messages_list: list[list[dict[str, str]]]) -> list[str]:
    """Chat-template prompts (generation prompt added) for conversations whose last message is the user's."""
    return [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in messages_list]


def measure_speed(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    batch_sizes: tuple[int, ...] = (1, 8),
    new_tokens: int = 64,
    repeats: int = 3,
    threads: int | None = None,
) -> Speed:
    """Fixed-length greedy generation timed at each batch size (one warm-up call first, not timed)."""
    import torch

    from curation.teachers.threads import apply_model_threads

    if not prompts:
        raise ValueError("speed needs at least one prompt")
    used = apply_model_threads(threads)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    speed = Speed(threads=used, device=str(device))
    model.eval()
    for batch in batch_sizes:
        encoded = {k: v.to(device) for k, v in _encode(tokenizer, prompts, batch).items()}
        kwargs = {
            "max_new_tokens": new_tokens,
            "min_new_tokens": new_tokens,  # no row may stop early: every timed step makes counted tokens
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "pad_token_id": pad_id,
        }
        timings = []
        with torch.inference_mode():
            for attempt in range(repeats + 1):
                started = time.perf_counter()
                out = model.generate(**encoded, **kwargs)
                seconds = time.perf_counter() - started
                made = out.shape[1] - encoded["input_ids"].shape[1]
                if made != new_tokens:
                    raise RuntimeError(f"generation made {made} tokens instead of {new_tokens}")
                if attempt:  # the first call warms caches and allocators
                    timings.append(seconds)
        latency = statistics.median(timings)
        speed.points.append(
            SpeedPoint(
                batch_size=batch,
                new_tokens=new_tokens,
                repeats=repeats,
                latency_s=round(latency, 6),
                latency_s_min=round(min(timings), 6),
                tokens_per_second=round(batch * new_tokens / latency, 3),
                prompt_tokens=int(encoded["input_ids"].shape[1]),
            )
        )
    return speed
