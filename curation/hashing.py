"""Content hashes: exact duplicates of a prompt (or of a completion under one prompt) are stored once."""

from __future__ import annotations

import hashlib
import json

import orjson


def messages_hash(messages: list[dict]) -> str:
    pairs = [[m["role"], m["content"]] for m in messages]
    try:
        # orjson writes exactly the bytes of the canonical form below (compact, non-ASCII as UTF-8, the same
        # escapes: pinned by a test), at a fraction of the cost; what it refuses takes the original path.
        canonical = orjson.dumps(pairs)
    except TypeError:
        canonical = json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
