"""Content hashes: exact duplicates of a prompt (or of a completion under one prompt) are stored once."""

from __future__ import annotations

import hashlib
import json


def messages_hash(messages: list[dict]) -> str:
    canonical = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
