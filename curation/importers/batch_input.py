"""The OpenAI Batch *input* file, indexed by custom_id so outputs can be joined to their prompts.

The index (custom_id -> byte offset) lives in a temporary SQLite file, not a dict, so memory stays flat
however many requests the batch holds; each lookup seeks to the line and parses only that request.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import BinaryIO

from curation.importers.lines import iter_lines, read_line_at
from curation.importers.records import BadRecord, FileError

_INSERT_BATCH = 5000


class BatchInput:
    def __init__(self, path: Path | str, max_bytes: int):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._tmp = tempfile.TemporaryDirectory(prefix="batch-input-")
        # Built here, then read by the import's reading thread (``curation.importers.ahead``), one at a time.
        self._db = sqlite3.connect(Path(self._tmp.name) / "index.sqlite3", check_same_thread=False)
        self._db.execute("CREATE TABLE request (custom_id TEXT PRIMARY KEY, offset INTEGER, line INTEGER)")
        try:
            self._handle: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            self.close()
            raise FileError(f"Cannot read the batch input file {self.path.name}: {exc.strerror}") from exc
        self._build()

    def _build(self) -> None:
        """Index every request line; unreadable lines are reported only if an output asks for them."""
        pending: list[tuple[str, int, int]] = []
        for line in iter_lines(self._handle, self.max_bytes):
            custom_id = _custom_id(line.text) if line.text else None
            if custom_id is not None:
                pending.append((custom_id, line.offset, line.number))
            if len(pending) >= _INSERT_BATCH:
                self._insert(pending)
        self._insert(pending)
        if not self._db.execute("SELECT 1 FROM request LIMIT 1").fetchone():
            raise FileError(f"The batch input file {self.path.name} holds no requests with a custom_id.")

    def _insert(self, pending: list[tuple[str, int, int]]) -> None:
        # The first request with a custom_id wins, as OpenAI itself rejects duplicates.
        self._db.executemany("INSERT OR IGNORE INTO request VALUES (?, ?, ?)", pending)
        pending.clear()

    def request_for(self, custom_id: str) -> dict:
        """The request body for ``custom_id``; BadRecord when it is missing or unreadable."""
        row = self._db.execute("SELECT offset, line FROM request WHERE custom_id = ?", (custom_id,)).fetchone()
        if row is None:
            raise BadRecord(f"missing field: custom_id {custom_id!r} is not in the batch input file")
        offset, number = row
        try:
            request = json.loads(read_line_at(self._handle, offset, self.max_bytes))
        except (ValueError, json.JSONDecodeError) as exc:
            raise BadRecord(f"batch input line {number}: {exc}") from exc
        except RecursionError as exc:
            raise BadRecord(f"batch input line {number}: bad JSON: nested too deeply") from exc
        body = request.get("body") if isinstance(request, dict) else None
        if not isinstance(body, dict):
            raise BadRecord(f"batch input line {number}: missing field: body")
        return body

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self._handle.close()
        self._db.close()
        self._tmp.cleanup()


def _custom_id(text: str) -> str | None:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    value = obj.get("custom_id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None
