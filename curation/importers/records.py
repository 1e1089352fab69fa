"""What every format parser produces, and the checks they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")
STOP_REASONS = {"stop", "eos", "end_turn", "stop_sequence", "eos_token"}
LENGTH_REASONS = {"length", "max_tokens", "max_length"}


class FileError(Exception):
    """The whole file cannot be read (unknown format, missing batch input...): no line is imported."""


class BadRecord(Exception):
    """One record is invalid; the message is the reason shown to the user with the line number."""


@dataclass(slots=True)
class Candidate:
    text: str
    source: str = "import"
    finish_reason: str = "unknown"
    params: dict = field(default_factory=dict)
    logprobs: Any = None
    text_hash: str = ""  # filled by the import's reading thread (``curation.hashing.text_hash``)


@dataclass(slots=True)
class Record:
    line: int
    messages: list[dict[str, str]]
    candidates: list[Candidate]
    external_id: str = ""
    metadata: dict = field(default_factory=dict)
    content_hash: str = ""  # filled by the import's reading thread (``curation.hashing.messages_hash``)
    size: int = 0  # bytes of text it holds, ditto: what a batch's memory bound counts


@dataclass(slots=True)
class Invalid:
    line: int
    reason: str
    raw: str | None = None  # the line as read, for the rejects file; None when it was too long to keep


def require(obj: dict, key: str, kind: type | tuple[type, ...], label: str | None = None) -> Any:
    """obj[key], checked for presence and type, with the field named in the error."""
    label = label or key
    if key not in obj or obj[key] is None:
        raise BadRecord(f"missing field: {label}")
    return check_type(obj[key], kind, label)


def check_type(value: Any, kind: type | tuple[type, ...], label: str) -> Any:
    # Called ~15 times per record: the exact-type test answers the common case without isinstance's work.
    if type(value) is kind or (type(kind) is tuple and type(value) in kind):
        return value
    # bool is an int in Python, but a JSON true where a number is expected is a mistake worth reporting.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise BadRecord(f"wrong type: {label} must be {_type_name(kind)}, not {_json_type(value)}")
    return value


def non_empty(text: str, label: str) -> str:
    if not text.strip():
        raise BadRecord(f"empty text: {label}")
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL; refusing the line here keeps SQLite and PostgreSQL imports alike.
        raise BadRecord(f"NUL character in {label}: text may not contain \\u0000")
    return text


def content_text(content: Any, label: str) -> str:
    """Message content as text: a string, or OpenAI's list of text parts joined."""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadRecord(f"wrong type: {label} holds a non-text part (only text is supported)")
            parts.append(part["text"])
        content = "\n".join(parts)
    return non_empty(check_type(content, str, label), label)


def check_messages(value: Any, label: str = "messages") -> list[dict[str, str]]:
    """A list of {role, content} turns with known roles and non-empty text."""
    check_type(value, list, label)
    if not value:
        raise BadRecord(f"empty text: {label} is an empty list")
    messages = []
    for index, turn in enumerate(value):
        where = f"{label}[{index}]"
        check_type(turn, dict, where)
        role = require(turn, "role", str, f"{where}.role")
        if role not in ROLES:
            raise BadRecord(f"wrong type: {where}.role must be one of {', '.join(ROLES)}, not {role!r}")
        messages.append({"role": role, "content": content_text(turn.get("content"), f"{where}.content")})
    return messages


def check_prompt_messages(messages: list[dict[str, str]], label: str = "messages") -> list[dict[str, str]]:
    if messages[-1]["role"] != "user":
        raise BadRecord(f"wrong type: {label} must end with a user turn (the prompt to answer)")
    return messages


def finish_reason(value: Any, label: str = "finish_reason") -> str:
    if value is None:
        return "unknown"
    check_type(value, str, label)
    if value in STOP_REASONS:
        return "stop"
    if value in LENGTH_REASONS:
        return "length"
    return "unknown"


def external_id(value: Any, label: str = "id") -> str:
    if value is None:
        return ""
    check_type(value, (str, int), label)
    return str(value)[:255]


def metadata(value: Any, label: str = "metadata") -> dict:
    if value is None:
        return {}
    return check_type(value, dict, label)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object", bool: "true/false"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in _as_tuple(kind)))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )
