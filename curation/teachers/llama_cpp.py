"""A GGUF teacher run by llama.cpp on the CPU, through ``llama-cpp-python`` (the optional ``llama-cpp`` extra).

llama.cpp runs the quantized weights as they are (the demo's Q4_1 file is 98 MB in memory instead of
~540 MB of float32 under transformers) with its own CPU kernels. Prompts are rendered with the chat
template stored in the GGUF, as transformers does when it loads the same file.

llama-cpp-python's completion API decodes one sequence at a time, so ``batch_size`` only sets how many
results are handed back together; throughput at batch 8 or 32 is that of batch 1 (bench/generation.py
shows it beside transformers, whose batches do share the work).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from curation.teachers.base import Candidate, GenerationParams, PromptInput, PromptResult, TeacherError, to_messages
from curation.teachers.threads import model_threads

logger = logging.getLogger(__name__)

INSTALL_HINT = "llama.cpp is an optional extra: install it with `make llama-cpp` (a source build, minutes)."


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


class LlamaCppTeacher:
    def __init__(
        self, path: Path | str, *, source: str = "", batch_size: int = 8, threads: int | None = None,
        context_size: int = 4096, logprobs: bool = False,
    ) -> None:
        self.path = Path(path)
        self.source = source or self.path.stem
        self.batch_size = max(1, batch_size)
        self.threads = model_threads(threads)
        self.context_size = context_size
        # Per-token logprobs need the logits of every position kept (llama.cpp's logits_all), which costs
        # memory and time, so they are switched on only for teachers set to give them.
        self.logprobs = logprobs
        self._llm: Any = None

    def load(self) -> None:
        if self._llm is not None:
            return
        if self.path.suffix != ".gguf":
            raise TeacherError(f"the llama.cpp engine runs .gguf files; {self.path.name} is not one")
        if not self.path.is_file():
            raise TeacherError(f"model path does not exist: {self.path}")
        try:
            from llama_cpp import Llama
        except ImportError:
            raise TeacherError(INSTALL_HINT) from None
        self._llm = Llama(
            model_path=str(self.path), n_ctx=self.context_size, n_threads=self.threads,
            n_threads_batch=self.threads, logits_all=self.logprobs, verbose=False,
        )

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams) -> Iterator[PromptResult]:
        self.load()
        if params.logprobs and not self.logprobs:
            raise TeacherError("this llama.cpp teacher was loaded without logprobs; set its 'logprobs' setting")
        group: list[PromptResult] = []
        for index, prompt in enumerate(prompts):
            messages = to_messages(prompt, params.system_prompt)
            candidates = [self._one(messages, params, sample) for sample in range(params.n)]
            group.append(PromptResult(index=index, candidates=candidates))
            if len(group) * params.n >= self.batch_size:
                yield from group
                group = []
        yield from group

    def _one(self, messages: list[dict[str, str]], params: GenerationParams, sample: int) -> Candidate:
        kwargs: dict[str, Any] = {"max_tokens": params.max_new_tokens}
        if params.greedy:
            kwargs.update(temperature=0.0, top_k=1)
        else:
            # top_k=0 and no min_p/repeat penalty: plain temperature + nucleus sampling, as the other engines do.
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0, min_p=0.0, repeat_penalty=1.0)
            if params.seed is not None:
                kwargs["seed"] = params.seed + sample
        if params.logprobs:
            kwargs.update(logprobs=True, top_logprobs=1)
        response = self._llm.create_chat_completion(messages=messages, **kwargs)
        choice = response["choices"][0]
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        tokens = int(response["usage"]["completion_tokens"])
        logprobs = None
        if params.logprobs and choice.get("logprobs"):
            logprobs = [round(float(item["logprob"]), 4) for item in choice["logprobs"]["content"]]
        return Candidate(
            text=(choice["message"]["content"] or "").strip(),
            finish_reason=finish,
            # Counted as transformers counts: the end-of-turn token is generated work too.
            completion_tokens=tokens + (1 if finish == "stop" else 0),
            logprobs=logprobs,
        )
