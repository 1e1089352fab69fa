"""Content hashes must never change: rows stored yesterday are matched by the hash of what is imported today."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from curation.hashing import messages_hash

TRICKY = ["", "plain", 'quote " and \\ backslash', "tab\tnewline\ncr\rform\fback\b", "\x00\x01\x1f\x7f",
          "é 中 😀 \u2028 \u2029 \ufeff \u0085 \u00a0", "</script>", "\\u0000 written out", "/slash"]


def canonical_hash(messages: list[dict]) -> str:
    """The definition: compact JSON of [role, content] pairs, non-ASCII as UTF-8."""
    pairs = [[m["role"], m["content"]] for m in messages]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


@pytest.mark.parametrize("text", TRICKY)
def test_the_fast_hash_is_the_canonical_hash(text):
    messages = [{"role": "system", "content": text}, {"role": "user", "content": text + "?"}]
    assert messages_hash(messages) == canonical_hash(messages)


def test_the_fast_hash_is_the_canonical_hash_on_random_text():
    rng = random.Random(7)
    alphabet = [chr(i) for i in range(0x80)] + list("é中😀\u2028\u2029\ufeff\u0085\u00a0\\\"/")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        messages = [{"role": "user", "content": text}]
        assert messages_hash(messages) == canonical_hash(messages), repr(text)


def test_text_that_is_not_valid_unicode_fails_as_before():
    with pytest.raises(UnicodeEncodeError):
        messages_hash([{"role": "user", "content": "lone \ud800 surrogate"}])
