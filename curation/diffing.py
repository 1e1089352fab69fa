"""Word-level diffs of texts, as escaped HTML with <ins>/<del>, for the history page and conflicts."""

from __future__ import annotations

import difflib
import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Words and runs of whitespace are separate tokens: a diff keeps the line breaks and a word gained after
# the last one does not show that last word as changed.
_TOKEN = re.compile(r"\S+|\s+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def word_diff_html(before: str, after: str) -> SafeString:
    a, b = tokens(before), tokens(after)
    # autojunk off: with it, difflib treats frequent words ("the") as junk on long texts and the diff goes coarse.
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    out: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(escape("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{escape(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{escape(''.join(b[j1:j2]))}</ins>")
    return mark_safe("".join(out))  # noqa: S308 - every piece of text is escaped above


def diff_stats(before: str, after: str) -> tuple[int, int]:
    """(words removed, words added)."""
    a, b = before.split(), after.split()
    removed = added = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op != "equal":
            removed += i2 - i1
            added += j2 - j1
    return removed, added
