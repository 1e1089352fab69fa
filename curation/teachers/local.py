"""A teacher that runs a causal LM in this process: a Hugging Face folder or a GGUF file.

Prompts are rendered with the model's chat template and generated in batches with left
padding (right padding would make the model continue after pad tokens). Results are yielded
batch by batch so the caller can store them and decide whether to go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from curation.teachers.base import Candidate, GenerationParams, PromptInput, PromptResult, TeacherError, to_messages
from curation.teachers.threads import apply_model_threads
from training.ml.student import eos_token_ids

logger = logging.getLogger(__name__)


class LocalTeacher:
    def __init__(
        self, path: Path | str, *, source: str = "", batch_size: int = 8, device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.source = source or (self.path.stem if self.path.suffix == ".gguf" else self.path.name)
        self.batch_size = max(1, batch_size)
        self.device = device
        # None: the one rule of curation.teachers.threads (physical cores, never more).
        self.threads = threads
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        """Load tokenizer and model once (~0.3 s for a saved folder, ~20 s for the demo GGUF)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.device == "cpu":
            apply_model_threads(self.threads)
        if not self.path.exists():
            raise TeacherError(f"model path does not exist: {self.path}")
        if self.path.suffix == ".gguf":
            folder, extra = self.path.parent, {"gguf_file": self.path.name}
        else:
            folder, extra = self.path, {}
        tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # float32 on the CPU: bf16 matmuls are slower there on most machines.
        dtype = torch.float32 if self.device == "cpu" else "auto"
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **extra).to(self.device)
        model.eval()
        self._tokenizer, self._model = tokenizer, model

    @property
    def model(self) -> Any:
        """The loaded causal LM (loads it first), for work beyond answering prompts (Magpie synthesis)."""
        self.load()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def render(self, prompt: PromptInput, system_prompt: str = "") -> str:
        self.load()
        messages = to_messages(prompt, system_prompt)
        if self._tokenizer.chat_template:
            return self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # A base model has no chat template: give it the plain text and let it continue.
        return "\n\n".join(m["content"] for m in messages)

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams) -> Iterator[PromptResult]:
        self.load()
        texts = [self.render(p, params.system_prompt) for p in prompts]
        # batch_size counts sequences, and each prompt takes n rows of the batch.
        per_batch = max(1, self.batch_size // params.n)
        for start in range(0, len(texts), per_batch):
            batch = self._generate_batch(texts[start : start + per_batch], params, start)
            for offset, candidates in enumerate(batch):
                yield PromptResult(index=start + offset, candidates=candidates)

    def _generate_batch(self, texts: list[str], params: GenerationParams, start: int) -> list[list[Candidate]]:
        import torch

        tokenizer, model = self._tokenizer, self._model
        # The chat template already holds any special tokens the model expects.
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        eos_ids = eos_token_ids(model, tokenizer)
        if params.seed is not None:
            # Seeded per batch: the same prompts batched the same way give the same samples.
            torch.manual_seed(params.seed + start)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                **_sampling_kwargs(params),
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=params.n,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos_ids,
                return_dict_in_generate=True,
                output_logits=params.logprobs,
            )
        generated = output.sequences[:, encoded["input_ids"].shape[1] :].cpu()
        logprobs = _chosen_logprobs(output.logits, generated) if params.logprobs else None
        rows = [self._candidate(generated[row], eos_ids, logprobs, row) for row in range(generated.shape[0])]
        return [rows[i * params.n : (i + 1) * params.n] for i in range(len(texts))]

    def _candidate(self, tokens: Any, eos_ids: list[int], logprobs: Any, row: int) -> Candidate:
        ids = tokens.tolist()
        stop_at = next((i for i, t in enumerate(ids) if t in eos_ids), None)
        # Everything after the first end token is padding (pad == eos for many chat models).
        count = len(ids) if stop_at is None else stop_at + 1
        text_ids = ids if stop_at is None else ids[:stop_at]
        return Candidate(
            text=self._tokenizer.decode(text_ids, skip_special_tokens=True).strip(),
            finish_reason="length" if stop_at is None else "stop",
            completion_tokens=count,
            logprobs=[round(v, 4) for v in logprobs[row, :count].tolist()] if logprobs is not None else None,
        )


def _sampling_kwargs(params: GenerationParams) -> dict[str, Any]:
    if params.greedy:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    # top_k=0 overrides a top_k some models set in generation_config.json, matching the
    # OpenAI-style parameters (temperature, top_p) the HTTP teacher takes.
    return {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": 0}


def _chosen_logprobs(step_logits: tuple[Any, ...], generated: Any) -> Any:
    """Log-probability of each generated token under the raw logits, as a (rows, steps) tensor."""
    import torch

    columns = []
    for step, logits in enumerate(step_logits):
        log_probs = torch.log_softmax(logits.float().cpu(), dim=-1)
        columns.append(log_probs.gather(1, generated[:, step : step + 1]))
    return torch.cat(columns, dim=1)
