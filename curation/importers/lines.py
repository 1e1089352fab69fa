"""Physical lines of a file, read in binary with a size limit, so one huge line cannot exhaust memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE_BYTES = 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_SKIP_CHUNK = 1024 * 1024


@dataclass(slots=True)
class Line:
    number: int  # 1-based, as an editor shows it
    offset: int  # byte offset of the line's start, to seek back to it (batch-input lookups)
    text: str | None  # None when the line is too long or not UTF-8; ``error`` says which
    error: str = ""
    sample: str = ""  # the start of an undecodable line, decoded with replacements, for the rejects file


def iter_lines(handle: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """Every line with its number, blank ones included (callers skip them), without the line ending."""
    number, offset = 0, 0
    while True:
        chunk = handle.readline(max_bytes + 2)  # room for the content plus "\r\n"
        if not chunk:
            return
        number += 1
        start, size = offset, len(chunk)
        if not chunk.endswith(b"\n") and len(chunk) == max_bytes + 2:
            size += _skip_rest_of_line(handle)
            offset += size
            yield Line(number, start, None, f"line over the size limit ({_human(size)} > {_human(max_bytes)})")
            continue
        offset += size
        data = chunk.rstrip(b"\r\n")
        if number == 1 and data.startswith(_BOM):
            data = data[len(_BOM):]
        if len(data) > max_bytes:
            yield Line(number, start, None, f"line over the size limit ({_human(len(data))} > {_human(max_bytes)})")
            continue
        try:
            yield Line(number, start, data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            sample = data[:2000].decode("utf-8", "replace")
            yield Line(number, start, None, f"undecodable bytes: not UTF-8 at byte {exc.start + 1}", sample)


def read_line_at(handle: BinaryIO, offset: int, max_bytes: int = MAX_LINE_BYTES) -> str:
    """The line starting at ``offset`` (an offset ``iter_lines`` gave), decoded; ValueError if unreadable."""
    handle.seek(offset)
    chunk = handle.readline(max_bytes + 2)
    data = chunk.rstrip(b"\r\n")
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    if len(data) > max_bytes or (len(chunk) == max_bytes + 2 and not chunk.endswith(b"\n")):
        raise ValueError("line over the size limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"undecodable bytes: not UTF-8 at byte {exc.start + 1}") from exc


def _skip_rest_of_line(handle: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = handle.readline(_SKIP_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} bytes"
