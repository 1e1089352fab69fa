"""Open a file, detect its format from the first records, and stream Records / Invalids out of it.

JSON Lines is read line by line. A file that is one JSON array (Stanford's ``alpaca_data.json`` as published,
pretty-printed) is streamed item by item with ijson, never loaded whole; its records are numbered by their
position in the array (1-based), which is what the errors then call their "line".
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import orjson

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
        if _is_json_array(handle):
            if parser is None:
                raise FileError(f"A JSON array cannot be read as {fmt}: write one JSON object per line.")
            yield fmt, _iter_json_array(handle, parser)
            return
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


def _loads(text: str):
    """orjson first, about three times faster than the standard library on a record (+5% records/s for an
    import, interleaved A/B); whatever it refuses is parsed again by the standard library, so what an import
    accepts (NaN, integers past 64 bits, lone surrogates, nesting up to Python's limit) and its error messages
    are as before."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _iter_json(handle, parser: Callable, max_bytes: int) -> Iterator[Record | Invalid]:
    for line in iter_lines(handle, max_bytes):
        if line.text is None:
            yield Invalid(line.number, line.error, line.sample or None)
            continue
        if not line.text.strip():
            continue
        try:
            obj = _loads(line.text)
        except json.JSONDecodeError as exc:
            yield Invalid(line.number, f"bad JSON: {exc.msg} at column {exc.colno}", line.text)
            continue
        except RecursionError:  # the parser recurses per level: thousands of nested brackets exhaust the stack
            yield Invalid(line.number, "bad JSON: nested too deeply", line.text)
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


def _is_json_array(handle) -> bool:
    """Whether the file's first non-blank character (after a BOM) opens a JSON array; the handle is rewound."""
    start = handle.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    handle.seek(0)
    return start.startswith(b"[")


def _array_items(handle) -> Iterator[object]:
    import ijson  # streaming parser: constant memory however large the array

    handle.seek(0)
    if handle.read(3) != b"\xef\xbb\xbf":
        handle.seek(0)
    return ijson.items(handle, "item", use_float=True)


def _iter_json_array(handle, parser: Callable) -> Iterator[Record | Invalid]:
    import ijson

    number = 0
    try:
        for number, obj in enumerate(_array_items(handle), start=1):
            if not isinstance(obj, dict):
                yield Invalid(number, f"wrong type: each array item must be a JSON object, not {type(obj).__name__}",
                              json.dumps(obj, ensure_ascii=False))
                continue
            try:
                messages, candidates, ident, meta = parser(obj)
            except BadRecord as exc:
                yield Invalid(number, str(exc), json.dumps(obj, ensure_ascii=False))
                continue
            yield Record(number, messages, candidates, ident, meta)
    except ijson.JSONError as exc:
        # The array breaks off here: nothing after this point can be read reliably.
        yield Invalid(number + 1, f"bad JSON after array item {number}: {exc}", None)


def sniff(handle, name: str, max_bytes: int) -> str:
    """The format, from the extension and the keys of the first JSON objects (first array item for an array)."""
    if name.lower().endswith(".csv"):
        return "csv"
    if _is_json_array(handle):
        import ijson

        try:
            first = next(iter(_array_items(handle)), None)
        except ijson.JSONError as exc:
            raise FileError(f"The file starts a JSON array that cannot be read: {exc}") from exc
        if first is None:
            raise FileError("The file holds no records (an empty JSON array).")
        if not isinstance(first, dict):
            raise FileError(f"The JSON array's items must be objects, not {type(first).__name__}.")
        return _format_of(first)
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
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict):
            return _format_of(obj)
        if isinstance(obj, list) or line.text.lstrip().startswith("["):
            break
    if first_text is None and first_error:
        raise FileError(f"The first lines cannot be read as text ({first_error}): is this JSON Lines or CSV?")
    if first_text is None:
        raise FileError("The file holds no records.")
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
