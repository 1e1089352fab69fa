"""CSV with a ``prompt`` column and an optional ``completion`` column, streamed with the csv module.

The csv module reads from our own line iterator, so undecodable or oversized physical lines are caught
with their line numbers; other columns (besides system, id and source) go into the prompt's metadata.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import BinaryIO

from curation.importers.lines import iter_lines
from curation.importers.records import BadRecord, Candidate, FileError, Invalid, Record, non_empty

KNOWN = {"prompt", "completion", "system", "id", "external_id", "source"}


class _LineFeed:
    """Feeds decoded lines to csv.reader and remembers the problems of each physical line."""

    def __init__(self, handle: BinaryIO, max_bytes: int):
        self._lines = iter_lines(handle, max_bytes)
        self.problems: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            if line.text is None:
                self.problems[line.number] = line.error
                yield (line.sample or "") + "\n"
            else:
                yield line.text + "\n"


def iter_csv(handle: BinaryIO, max_bytes: int) -> Iterator[Record | Invalid]:
    feed = _LineFeed(handle, max_bytes)
    # The field limit bounds memory too: an unterminated quote would otherwise swallow the rest of the file.
    csv.field_size_limit(max(csv.field_size_limit(), max_bytes))
    reader = csv.reader(feed, strict=True)
    header = _header(reader, feed)
    last = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Invalid(last + 1, f"bad CSV: {exc}")
            last = reader.line_num
            continue
        first, last = last + 1, reader.line_num
        problem = next((feed.problems.pop(n) for n in range(first, last + 1) if n in feed.problems), None)
        if problem:
            yield Invalid(first, problem, None)
        elif any(cell.strip() for cell in row):
            yield _record(first, header, row)


def _header(reader, feed: _LineFeed) -> list[str]:
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration as exc:
        raise FileError("The CSV file is empty.") from exc
    except csv.Error as exc:
        raise FileError(f"The CSV header cannot be read: {exc}") from exc
    if feed.problems:
        raise FileError(f"The CSV header cannot be read: {feed.problems[min(feed.problems)]}")
    if "prompt" not in header:
        raise FileError(f"The CSV file needs a 'prompt' column (found: {', '.join(header) or 'none'}).")
    return header


def _record(line: int, header: list[str], row: list[str]) -> Record | Invalid:
    raw = _as_csv(row)
    if len(row) != len(header):
        return Invalid(line, f"wrong number of columns: expected {len(header)}, got {len(row)}", raw)
    cells = dict(zip(header, row, strict=True))
    try:
        messages = [{"role": "user", "content": non_empty(cells["prompt"], "prompt")}]
        if cells.get("system", "").strip():
            messages.insert(0, {"role": "system", "content": cells["system"]})
        candidates = []
        if "completion" in cells:
            text = non_empty(cells["completion"], "completion")
            candidates.append(Candidate(text=text, source=(cells.get("source") or "import")[:200]))
    except BadRecord as exc:
        return Invalid(line, str(exc), raw)
    ident = (cells.get("external_id") or cells.get("id") or "")[:255]
    metadata = {name: value for name, value in cells.items() if name not in KNOWN and name}
    return Record(line, messages, candidates, ident, metadata)


def _as_csv(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()
