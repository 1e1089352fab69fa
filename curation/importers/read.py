"""Open a file, detect its format from the first records, and stream Records / Invalids out of it."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from curation.importers import formats
from curation.importers.batch_input import BatchInput
from curation.importers.csvfile import iter_csv
from curation.importers.lines import MAX_LINE_BYTES, iter_lines
from curation.importers.records import BadRecord, FileError, Invalid, Record

FORMATS = ("jsonl", "openai-batch", "sharegpt", "alpaca", "csv")
JSON_PARSERS: dict[str, Callable] = {
    "jsonl": formats.parse_generic,
    "sharegpt": formats.parse_sharegpt,
    "alpaca": formats.parse_alpaca,
}
SNIFF_LINES = 20


@contextmanager
def read_records(
    path: Path | str,
    fmt: str = "auto",
    *,
    batch_input: Path | str | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[tuple[str, Iterator[Record | Invalid]]]:
    """``with read_records(path) as (detected_format, records): ...``; FileError when nothing can be read."""
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise FileError(f"Unknown format '{fmt}'. Use auto or one of: {', '.join(FORMATS)}.")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise FileError(f"Cannot read {path.name}: {exc.strerror}") from exc
    index = None
    try:
        if fmt == "auto":
            fmt = sniff(handle, path.name, max_line_bytes)
            handle.seek(0)
        if fmt == "csv":
            yield fmt, iter_csv(handle, max_line_bytes)
            return
        parser = JSON_PARSERS.get(fmt)
        if fmt == "openai-batch":
            if batch_input is None:
                raise FileError(
                    "An OpenAI Batch output holds no prompts: give the batch input file (--batch-input) "
                    "so each output can be joined to its request by custom_id."
                )
            index = BatchInput(batch_input, max_line_bytes)
            parser = partial(formats.parse_openai_batch, request_for=index.request_for)
        yield fmt, _iter_json(handle, parser, max_line_bytes)
    finally:
        handle.close()
        if index is not None:
            index.close()


def _iter_json(handle, parser: Callable, max_bytes: int) -> Iterator[Record | Invalid]:
    for line in iter_lines(handle, max_bytes):
        if line.text is None:
            yield Invalid(line.number, line.error, line.sample or None)
            continue
        if not line.text.strip():
            continue
        try:
            obj = json.loads(line.text)
        except json.JSONDecodeError as exc:
            yield Invalid(line.number, f"bad JSON: {exc.msg} at column {exc.colno}", line.text)
            continue
        if not isinstance(obj, dict):
            yield Invalid(line.number, f"wrong type: each line must be a JSON object, not {type(obj).__name__}", line.text)
            continue
        try:
            messages, candidates, ident, meta = parser(obj)
        except BadRecord as exc:
            yield Invalid(line.number, str(exc), line.text)
            continue
        yield Record(line.number, messages, candidates, ident, meta)


def sniff(handle, name: str, max_bytes: int) -> str:
    """The format, from the extension and the keys of the first JSON objects."""
    if name.lower().endswith(".csv"):
        return "csv"
    first_text, first_error = None, ""
    for line in iter_lines(handle, max_bytes):
        if line.number > SNIFF_LINES:
            break
        first_error = first_error or line.error
        if line.text is None or not line.text.strip():
            continue
        first_text = first_text or line.text.strip()
        try:
            obj = json.loads(line.text)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return _format_of(obj)
        if isinstance(obj, list) or line.text.lstrip().startswith("["):
            break
    if first_text is None and first_error:
        raise FileError(f"The first lines cannot be read as text ({first_error}): is this JSON Lines or CSV?")
    if first_text is None:
        raise FileError("The file holds no records.")
    if first_text.startswith("["):
        raise FileError("This is one JSON array, not JSON Lines: write one JSON object per line.")
    if not first_text.startswith("{") and _is_csv_header(first_text):
        return "csv"
    raise FileError(
        "Could not detect the format from the first lines: choose it explicitly "
        f"({', '.join(FORMATS)})."
    )


def _is_csv_header(text: str) -> bool:
    try:
        names = next(csv.reader([text]))
    except csv.Error:
        return False
    return "prompt" in {name.strip().lower() for name in names}


def _format_of(obj: dict) -> str:
    if "custom_id" in obj and ("response" in obj or "error" in obj):
        return "openai-batch"
    if "custom_id" in obj and "body" in obj:
        raise FileError(
            "This is an OpenAI Batch input file (requests, no answers): import the batch output and give "
            "this file as the batch input."
        )
    if "conversations" in obj:
        return "sharegpt"
    if "instruction" in obj:
        return "alpaca"
    if "prompt" in obj or "messages" in obj:
        return "jsonl"
    raise FileError(
        f"Could not detect the format: the first record has the keys {', '.join(sorted(obj)) or '(none)'}; "
        "expected prompt/messages, conversations, instruction or custom_id."
    )
