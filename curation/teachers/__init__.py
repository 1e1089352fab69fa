"""Teachers that produce candidate outputs. Plain Python, no Django: torch loads only when a local model does.

``LocalTeacher`` runs a Hugging Face folder or a GGUF file in this process; ``OpenAICompatibleTeacher``
calls any chat-completions server. Both yield a ``PromptResult`` per prompt, so callers store as they go.
"""

from curation.teachers.base import (
    Candidate,
    GenerationParams,
    PromptInput,
    PromptResult,
    Teacher,
    TeacherAuthError,
    TeacherError,
    to_messages,
)
from curation.teachers.local import LocalTeacher
from curation.teachers.openai_compatible import OpenAICompatibleTeacher

__all__ = [
    "Candidate",
    "GenerationParams",
    "LocalTeacher",
    "OpenAICompatibleTeacher",
    "PromptInput",
    "PromptResult",
    "Teacher",
    "TeacherAuthError",
    "TeacherError",
    "to_messages",
]
