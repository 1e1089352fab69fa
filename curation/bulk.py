"""Fast ``INSERT ... ON CONFLICT DO NOTHING`` of plain tuples, for imports and freezes of millions of rows.

``bulk_create`` prepares every value of every object through the field API (~10 µs each): at 10 columns and
three rows per imported record that alone caps an import near 3,000 records/s. Here the caller passes the
varying columns already in database form (JSON as text), and every other column gets its model default,
prepared once per call. Columns come from the model, so a field added later with a default needs no change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import connections, models, router
from django.utils import timezone

POSTGRES_MAX_PARAMS = 60_000  # the protocol allows 65,535 parameters per statement


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: list[tuple], *, ignore_conflicts: bool = True) -> None:
    """Insert ``rows`` (tuples of ``fields`` values, JSON fields as ``to_json`` text); no ids come back."""
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    varying = [model._meta.get_field(name) for name in fields]
    constant = [f for f in model._meta.concrete_fields if not f.primary_key and f not in varying]
    now = timezone.now()
    constant_values = tuple(f.get_db_prep_save(_default(f, now), connection) for f in constant)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in varying + constant)
    one_row = "(" + ", ".join(["%s"] * (len(varying) + len(constant))) + ")"
    head = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES "  # noqa: S608 - names from the model
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # SQLite has no network round trip: executemany of one statement is its fastest path.
            cursor.executemany(head + one_row + tail, [row + constant_values for row in rows])
            return
        per_statement = max(1, POSTGRES_MAX_PARAMS // (len(varying) + len(constant)))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            params = [value for row in chunk for value in row + constant_values]
            cursor.execute(head + ", ".join([one_row] * len(chunk)) + tail, params)


def to_json(value: Any) -> str:
    """JSON text as Django's JSONField stores it (both backends accept text for a JSON column)."""
    return json.dumps(value)


def _default(field: models.Field, now) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    return field.get_default()
