"""A teacher run by vLLM in this process, for machines with a GPU.

vLLM batches continuously on the GPU (paged attention), so a generation job hands it all its prompts at
once and stores results as they come back in groups of ``batch_size``. It is not a dependency: operators
install ``vllm`` on GPU workers (``pip install vllm``) and pick the engine on the teacher. Without CUDA or
without the package, ``load`` fails with a message saying so before any job work starts.

A vLLM *server* needs no engine here: register it as an ``openai-compatible`` teacher.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from curation.teachers.base import Candidate, GenerationParams, PromptInput, PromptResult, TeacherError, to_messages

NEEDS_GPU = (
    "the vLLM engine needs a CUDA GPU and this machine has none: pick the transformers engine "
    "(or llama.cpp for a .gguf file) for this teacher, or run the job on a GPU worker"
)
INSTALL_HINT = "the vLLM engine needs the vllm package on the worker: pip install vllm (GPU workers only)"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def vllm_ready() -> str | None:
    """None when this machine can run the vLLM engine, else the reason it cannot."""
    if not cuda_available():
        return NEEDS_GPU
    try:
        import vllm  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


class VLLMTeacher:
    def __init__(
        self, path: Path | str, *, source: str = "", batch_size: int = 64, gpu_memory_utilization: float = 0.85,
    ) -> None:
        self.path = Path(path)
        self.source = source or self.path.name
        self.batch_size = max(1, batch_size)
        self.gpu_memory_utilization = gpu_memory_utilization
        self._llm: Any = None

    def load(self) -> None:
        if self._llm is not None:
            return
        if reason := vllm_ready():
            raise TeacherError(reason)
        if not self.path.exists():
            raise TeacherError(f"model path does not exist: {self.path}")
        from vllm import LLM

        self._llm = LLM(model=str(self.path), gpu_memory_utilization=self.gpu_memory_utilization)

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams) -> Iterator[PromptResult]:
        self.load()
        from vllm import SamplingParams

        sampling = SamplingParams(**sampling_kwargs(params))
        conversations = [to_messages(p, params.system_prompt) for p in prompts]
        # Handed over in chunks so a cancelled job stops within one chunk and results are stored as they come.
        for start in range(0, len(conversations), self.batch_size):
            outputs = self._llm.chat(conversations[start : start + self.batch_size], sampling, use_tqdm=False)
            for offset, output in enumerate(outputs):
                yield PromptResult(index=start + offset, candidates=[_candidate(o, params) for o in output.outputs])


def sampling_kwargs(params: GenerationParams) -> dict[str, Any]:
    """vLLM SamplingParams for our parameters (plain data, so it is testable without vLLM)."""
    kwargs: dict[str, Any] = {"n": params.n, "max_tokens": params.max_new_tokens, "seed": params.seed}
    if params.greedy:
        kwargs.update(temperature=0.0)
    else:
        kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=-1)
    if params.logprobs:
        kwargs["logprobs"] = 0  # 0 = only the chosen token's logprob
    return kwargs


def _candidate(output: Any, params: GenerationParams) -> Candidate:
    finish = "length" if output.finish_reason == "length" else "stop"
    logprobs = None
    if params.logprobs and output.logprobs:
        logprobs = [round(float(step[token].logprob), 4) for token, step in zip(output.token_ids, output.logprobs)]
    return Candidate(text=output.text.strip(), finish_reason=finish, completion_tokens=len(output.token_ids),
                     logprobs=logprobs)
