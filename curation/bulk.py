"""Fast ``INSERT ... ON CONFLICT DO NOTHING`` of plain tuples, for imports and freezes of millions of rows.

``bulk_create`` prepares every value of every object through the field API (~10 µs each): at 10 columns and
three rows per imported record that alone caps an import near 3,000 records/s. Here the caller passes the
varying columns already in database form (JSON as text), and every other column gets its model default,
prepared once per call. Columns come from the model, so a field added later with a default needs no change.

``returning`` names columns to read back from the rows actually inserted (conflicting ones are skipped), so
callers learn what was new without asking the database beforehand.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from django.db import connections, models, router, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

SQLITE_DEFAULT_MAX_PARAMS = 999


def insert_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: list[tuple],
    *,
    ignore_conflicts: bool = True,
    returning: Sequence[str] = (),
) -> list[tuple]:
    """Insert ``rows`` (tuples of ``fields`` values, JSON fields as ``to_json`` text).

    Returns the ``returning`` columns of the inserted rows (empty when none were asked for).
    """
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    varying = [model._meta.get_field(name) for name in fields]
    constant = [f for f in model._meta.concrete_fields if not f.primary_key and f not in varying]
    now = timezone.now()
    constant_values = tuple(f.get_db_prep_save(_default(f, now), connection) for f in constant)
    quote = connection.ops.quote_name
    statement = _Statement(
        table=quote(model._meta.db_table),
        columns=", ".join(quote(f.column) for f in varying + constant),
        conflict=" ON CONFLICT DO NOTHING" if ignore_conflicts else "",
        returning=f" RETURNING {', '.join(quote(model._meta.get_field(n).column) for n in returning)}" if returning else "",
    )
    with transaction.atomic(using=connection.alias), connection.cursor() as wrapper, connection.wrap_database_errors:
        # The driver's cursor, not Django's: with DEBUG on, Django keeps the text of the last 9,000 queries,
        # and these statements carry megabytes of values each.
        cursor = wrapper.cursor
        if connection.vendor == "postgresql":
            return _copy(cursor, statement, _CopyData(rows, constant_values), model._meta.db_table, quote)
        return _values(cursor, statement, [row + constant_values for row in rows], _max_params(connection))


def array_text(values) -> str:
    """Plain values (numbers, hex digests) as one PostgreSQL array literal, for ``= ANY(%s::type[])``: the
    driver's adaptation of a list costs about 1.6 µs an item, and an IN list of thousands of placeholders more."""
    return "{" + ",".join(map(str, values)) + "}"


class _Statement(NamedTuple):
    table: str
    columns: str
    conflict: str
    returning: str


def _copy(cursor, statement: _Statement, rows: _CopyData, table_name: str, quote) -> list[tuple]:
    """PostgreSQL: COPY, the fastest way in.

    COPY cannot skip unique conflicts nor return anything, so when either is asked for the rows go into a
    temporary table shaped like the target first, then in with one INSERT ... SELECT.
    """
    if not statement.conflict and not statement.returning:
        with cursor.copy(f"COPY {statement.table} ({statement.columns}) FROM STDIN") as copy:
            rows.write_to(copy)
        return []
    stage = quote(f"stage_{table_name}")
    cursor.execute(f"CREATE TEMPORARY TABLE {stage} AS SELECT {statement.columns} FROM {statement.table} WITH NO DATA")
    with cursor.copy(f"COPY {stage} ({statement.columns}) FROM STDIN") as copy:
        rows.write_to(copy)
    cursor.execute(
        f"INSERT INTO {statement.table} ({statement.columns}) SELECT {statement.columns} FROM {stage}"  # noqa: S608
        f"{statement.conflict}{statement.returning}"
    )
    inserted = cursor.fetchall() if statement.returning else []
    cursor.execute(f"DROP TABLE {stage}")
    return inserted


class _CopyData:
    """Rows for COPY, written as COPY's text format by hand when every value is a plain one.

    psycopg's ``write_row`` adapts value by value through its dumpers, ~12 µs a row here: a fifth of an
    import's Python time. Plain values (text, numbers, booleans, NULL; the model defaults, rendered once) need
    only COPY's four escapes, applied below; a row with anything else goes through ``write_row`` after all.
    """

    CHUNK = 1000  # rows per write

    def __init__(self, rows: list[tuple], constants: tuple):
        self.rows, self.constants = rows, constants

    def write_to(self, copy) -> None:
        try:
            suffix = "".join("\t" + _copy_field(_plain(value)) for value in self.constants) + "\n"
        except _NotPlain:
            suffix = None
        start = 0
        if suffix is not None:
            try:
                for start in range(0, len(self.rows), self.CHUNK):
                    copy.write("".join(["\t".join([_copy_field(v) for v in row]) + suffix
                                        for row in self.rows[start:start + self.CHUNK]]))
                return
            except _NotPlain:
                pass  # this chunk (not yet written) and the rest go through the driver
        for row in self.rows[start:]:
            copy.write_row(row + self.constants)


class _NotPlain(Exception):
    pass


def _copy_field(value: Any) -> str:
    kind = type(value)
    if kind is str:
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        return value
    if value is None:
        return "\\N"
    if kind is int:
        return str(value)
    if kind is bool:
        return "t" if value else "f"
    raise _NotPlain


def _plain(value: Any) -> Any:
    """A model default (a JSON wrapper, a time, a float) as text; other values as they are, for ``_copy_field``."""
    if isinstance(value, Jsonb):
        return to_json(value.obj)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def _values(cursor, statement: _Statement, rows: list[tuple], max_params: int) -> list[tuple]:
    """Other databases (SQLite): multi-row VALUES statements, as many rows each as the parameter limit allows."""
    width = len(rows[0])
    one_row = "(" + ", ".join(["%s"] * width) + ")"
    per_statement = max(1, max_params // width)
    inserted: list[tuple] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        cursor.execute(
            f"INSERT INTO {statement.table} ({statement.columns}) VALUES {', '.join([one_row] * len(chunk))}"  # noqa: S608
            f"{statement.conflict}{statement.returning}",
            [value for row in chunk for value in row],
        )
        if statement.returning:
            inserted += cursor.fetchall()
    return inserted


def _max_params(connection) -> int:
    raw = connection.connection
    if isinstance(raw, sqlite3.Connection):
        # Django assumes the historical 999; the linked SQLite usually allows far more, and says so.
        return min(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), 30_000)
    return connection.features.max_query_params or SQLITE_DEFAULT_MAX_PARAMS


_encode = json.JSONEncoder().encode  # json.dumps' own defaults, without its per-call argument handling


def to_json(value: Any) -> str:
    """JSON text as Django's JSONField stores it (both backends accept text for a JSON column).

    orjson first (an import encodes five values per record; it is ~5x faster); what it refuses (integers beyond
    64 bits, non-string keys) goes through the standard library, so any value the ORM could store still is. A
    NaN or infinity (which the standard library's parser accepts) becomes null, as PostgreSQL has no JSON NaN.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _encode(value)


def _default(field: models.Field, now) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    return field.get_default()
