"""Magpie-style prompt synthesis: the teacher writes the user's turn itself.

An instruction-tuned model has learned that a user question follows the user header of its chat template. Give
it the template up to that header, with no content ("<|im_start|>user\\n" after the system turn for ChatML), and
it samples a plausible user request (Xu et al. 2024, "Magpie: Alignment Data Synthesis from Scratch by Prompting
Aligned LLMs with Nothing"; distilabel's MagpieGenerator does the same with a fixed pre-query template per
model family). We derive the pre-query text from the tokenizer's own chat template, so any model with one works.

Hand-written rather than taken from distilabel: distilabel brings its own pipeline runtime and LLM wrappers,
while this is one `generate` call on a model we already load.

No Django here: a list of prompts with flags in, or out. The curation service imports them into a project,
where the import's quality pass adds its own flags (near-duplicates across the whole project among them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

_MARK = "\u2063MAGPIE\u2063"  # an invisible separator no template contains
_WORD = re.compile(r"\w+", re.UNICODE)
_SPECIAL = re.compile(r"<\|[^|>]{1,40}\|>|<(?:/?s|unk|pad)>")


@dataclass
class SynthPrompt:
    text: str
    tokens: int
    finish_reason: str  # "stop": the model ended its turn; "length": cut at max_new_tokens
    flags: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.flags

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SynthesisResult:
    prompts: list[SynthPrompt]
    generated: int  # samples drawn
    duplicates: int  # samples dropped as duplicates of earlier ones or of `existing`
    empty: int  # samples with no text at all (dropped)

    @property
    def flagged(self) -> int:
        return sum(1 for p in self.prompts if p.flags)


def pre_query_template(tokenizer: Any, system_prompt: str = "") -> str:
    """The chat template rendered up to where the user's text would start (the user header, empty content)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("Magpie synthesis needs a chat template (an instruction-tuned teacher)")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": _MARK})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    if _MARK not in text:
        raise ValueError("the chat template does not render the user's text verbatim")
    return text[: text.index(_MARK)]


def normalize(text: str) -> str:
    """The dedup key: lower-cased words only, so spacing and punctuation do not make a prompt new."""
    return " ".join(_WORD.findall(text.lower()))


def quality_flags(text: str, finish_reason: str) -> list[str]:
    """Why a synthesized prompt is doubtful: cut off, too short, repetitive, leaking template tokens."""
    flags = []
    words = _WORD.findall(text.lower())
    if finish_reason == "length":
        flags.append("truncated")
    if len(words) < 3:
        flags.append("short")
    if len(words) >= 12:
        grams = list(zip(words, words[1:], words[2:]))
        if 1 - len(set(grams)) / len(grams) >= 0.5:
            flags.append("repetition")
    visible = [c for c in text if not c.isspace()]
    if visible and sum(c.isalpha() for c in visible) / len(visible) < 0.6:
        flags.append("mostly_symbols")
    if _SPECIAL.search(text):
        flags.append("template_tokens")
    if "assistant" in words[:2] or text.lower().startswith(("sure", "certainly", "of course")):
        flags.append("answer_not_question")  # the model slipped into the assistant's role
    return flags


def synthesize_prompts(
    model: Any,
    tokenizer: Any,
    count: int,
    *,
    system_prompt: str = "",
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    seed: int = 0,
    existing: Iterable[str] = (),
    max_attempts: int | None = None,
    keep_flagged: bool = True,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SynthesisResult:
    """Sample up to `count` new prompts (unique by `normalize`, and not in `existing`).

    Sampling stops after `max_attempts` samples (default 4 x count) even if duplicates kept it short of
    `count`. With keep_flagged=False, flagged prompts do not count towards `count` and are not returned.
    """
    import torch

    from training.ml.student import eos_token_ids

    prefix = pre_query_template(tokenizer, system_prompt)
    encoded = tokenizer([prefix], return_tensors="pt", add_special_tokens=False)
    device = next(model.parameters()).device
    eos = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    seen = {normalize(t) for t in existing}
    limit = max_attempts if max_attempts is not None else 4 * count
    out: list[SynthPrompt] = []
    generated = duplicates = empty = 0
    model.eval()
    batch_number = 0
    while len(out) < count and generated < limit:
        if should_stop and should_stop():
            break
        rows = min(batch_size, limit - generated)
        torch.manual_seed(seed + batch_number)  # a given seed and batch size give the same prompts again
        batch_number += 1
        with torch.inference_mode():
            result = model.generate(
                input_ids=encoded["input_ids"].to(device),
                attention_mask=encoded["attention_mask"].to(device),
                do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                max_new_tokens=max_new_tokens, num_return_sequences=rows,
                eos_token_id=eos, pad_token_id=pad,
            )
        new = result[:, encoded["input_ids"].shape[1] :].tolist()
        generated += rows
        for ids in new:
            stop = next((i for i, t in enumerate(ids) if t in eos), None)
            text = tokenizer.decode(ids if stop is None else ids[:stop], skip_special_tokens=True)
            # A model can emit NUL, which PostgreSQL text cannot hold and no annotator can see.
            text = text.replace("\x00", "").strip()
            if not text:
                empty += 1
                continue
            key = normalize(text)
            if key in seen:
                duplicates += 1
                continue
            finish = "length" if stop is None else "stop"
            prompt = SynthPrompt(text, len(ids) if stop is None else stop + 1, finish, quality_flags(text, finish))
            if prompt.flags and not keep_flagged:
                continue
            seen.add(key)
            out.append(prompt)
            if len(out) == count:
                break
        if progress:
            progress(len(out), count)
    return SynthesisResult(prompts=out, generated=generated, duplicates=duplicates, empty=empty)
