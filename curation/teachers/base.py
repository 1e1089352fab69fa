"""What every teacher takes and gives back. No Django, no torch: importable anywhere."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "length"]
Message = dict[str, str]
# A prompt is plain user text or a ready chat (list of {"role", "content"} messages).
PromptInput = str | Sequence[Message]


class TeacherError(Exception):
    """A teacher could not produce output; the message is meant for the user."""


class TeacherAuthError(TeacherError):
    """The endpoint refused the credentials. Retrying cannot help, so it is never retried."""


@dataclass(frozen=True)
class GenerationParams:
    n: int = 1
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None
    system_prompt: str = ""
    logprobs: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be at least 1")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must not be negative")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.greedy and self.n > 1:
            raise ValueError("greedy decoding (temperature 0) gives one answer per prompt: use n=1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def as_dict(self) -> dict[str, Any]:
        """The sampling parameters as stored with each completion (n is per job, not per output)."""
        data = asdict(self)
        data.pop("n")
        return data


@dataclass
class Candidate:
    text: str
    finish_reason: FinishReason
    completion_tokens: int
    # Log-probability of each chosen token under the model's own (unwarped) distribution.
    logprobs: list[float] | None = None


@dataclass
class PromptResult:
    index: int  # position of the prompt in the list given to generate()
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.candidates)


class Teacher(Protocol):
    source: str  # the model name recorded on each completion

    def load(self) -> None:
        """Get ready (load weights, check credentials) so that timing starts with generation."""
        ...

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams) -> Iterator[PromptResult]:
        """Yield one result per prompt as soon as it is ready; stop iterating to stop generating."""
        ...


def to_messages(prompt: PromptInput, system_prompt: str = "") -> list[Message]:
    """Normalise a prompt to chat messages, putting the job's system prompt first unless the chat has one."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages
