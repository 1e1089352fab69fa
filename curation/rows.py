"""The review round trip's queries, written once in SQL instead of built by the ORM on every request.

Saving a decision and getting the next item is the request annotators wait for, hundreds of times an hour
each. Django builds and compiles an ORM query in about 1 ms of Python (measured at 1M completions, in process:
a save with the next item took 25.6 ms, 6.8 ms of it in the driver and the database; 13.6 ms with the SQL
below), so the dozen queries of that request
are prepared here once per process and mapped to model instances with the same converters the ORM applies
(``Model.from_db``): the rows come back as ordinary models, every save path keeps its rules in the service.
The SQL is the common subset of PostgreSQL and SQLite; row locks are added where the database has them.
Everything off this path uses the ORM.
"""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.db.models import Model

from curation.models import Assignment, Completion, Project, Prompt, Review


class _Columns:
    """A model's column list for SELECT, and the ORM's converters for the values that come back."""

    def __init__(self, model: type[Model], alias: str, exclude: tuple[str, ...] = ()):
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if f.name not in exclude]
        self.names = [f.attname for f in self.fields]
        quote = connection.ops.quote_name
        self.sql = ", ".join(f"{alias}.{quote(f.column)}" for f in self.fields)
        self.converters = []
        for i, f in enumerate(self.fields):
            col = f.get_col(alias)
            found = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
            if found:
                self.converters.append((i, col, found))

    def instance(self, row) -> Model:
        values = list(row[:len(self.fields)])
        for i, col, converters in self.converters:
            for convert in converters:
                values[i] = convert(values[i], col, connection)
        return self.model.from_db(connection.alias, self.names, values)


def _columns(model: type[Model], alias: str, exclude: tuple[str, ...] = ()) -> _Columns:
    return _columns_for(connection.vendor, model, alias, exclude)


@cache
def _columns_for(vendor: str, model: type[Model], alias: str, exclude: tuple[str, ...]) -> _Columns:
    return _Columns(model, alias, exclude)


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _lock(skip_locked: bool = False) -> str:
    if not connection.features.has_select_for_update:
        return ""  # SQLite: the IMMEDIATE transaction holds the database's write lock instead
    return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"


# --- reads -------------------------------------------------------------------------------------------------


def project_with_role(*, user_id: int | None, slug: str | None = None, pk: int | None = None) -> Project | None:
    """The project by slug or id, with ``member_role``: the user's membership role in it, or None (every
    project page asks this first)."""
    if pk is not None and not -2**63 <= int(pk) < 2**63:
        return None  # no such id, as the ORM answers for an out-of-range number
    cols = _columns(Project, "p")
    where, key = ("p.slug = %s", slug) if slug is not None else ("p.id = %s", pk)
    found = _fetch(f"SELECT {cols.sql}, (SELECT m.role FROM curation_membership m WHERE m.project_id = p.id"
                   f" AND m.user_id = %s) FROM curation_project p WHERE {where}", [user_id, key])
    if not found:
        return None
    project = cols.instance(found[0])
    project.member_role = found[0][-1]
    return project


def prompt_locked(*, prompt_id: int, project_id: int) -> Prompt | None:
    """The project's prompt, its row locked for the rest of the transaction."""
    cols = _columns(Prompt, "p")
    rows = _fetch(f"SELECT {cols.sql} FROM curation_prompt p WHERE p.id = %s AND p.project_id = %s{_lock()}",
                  [prompt_id, project_id])
    return cols.instance(rows[0]) if rows else None


def reviews_for_save(*, prompt_id: int, annotator_id: int) -> list[Review]:
    """The item's current reviews and the annotator's own (superseded or not), oldest change first."""
    cols = _columns(Review, "r")
    rows = _fetch(f"SELECT {cols.sql} FROM curation_review r WHERE r.prompt_id = %s"
                  " AND (NOT r.superseded OR r.annotator_id = %s) ORDER BY r.updated_at, r.id", [prompt_id, annotator_id])
    return [cols.instance(row) for row in rows]


def assignments_for_save(*, prompt_id: int, annotator_id: int) -> list[tuple[Assignment, int]]:
    """The item's open assignments and the annotator's, each with its prompt's project id, in id order."""
    cols = _columns(Assignment, "a")
    rows = _fetch(f"SELECT {cols.sql}, p.project_id FROM curation_assignment a JOIN curation_prompt p ON p.id = a.prompt_id"
                  " WHERE a.prompt_id = %s OR a.annotator_id = %s ORDER BY a.id", [prompt_id, annotator_id])
    return [(cols.instance(row), row[-1]) for row in rows]


def completions_of(prompt_id: int) -> list[Completion]:
    """The item's candidates in id order, without their logprobs (never shown, possibly large)."""
    cols = _columns(Completion, "c", ("logprobs",))
    rows = _fetch(f"SELECT {cols.sql} FROM curation_completion c WHERE c.prompt_id = %s ORDER BY c.id", [prompt_id])
    return [cols.instance(row) for row in rows]


def queue_candidate(*, project_id: int, annotator_id: int, status: str, reviews_required: int) -> Prompt | None:
    """The first prompt of ``status`` still open to the annotator, locked (skipping rows others hold locked),
    with the page's facts: ``my_review_id``, ``a_flag_id``, ``a_tag_id``. ``selectors.queue._open_prompts``
    in SQL, its scalar subqueries included (see there why not EXISTS); the ORDER BY names the queue index's
    columns (project and status are fixed by the filter) so the planner walks that index.
    """
    cols = _columns(Prompt, "p")
    rows = _fetch(
        f"SELECT {cols.sql},"
        " (SELECT r.id FROM curation_review r WHERE r.prompt_id = p.id AND r.annotator_id = %s LIMIT 1),"
        " (SELECT f.id FROM curation_flag f WHERE f.prompt_id = p.id LIMIT 1),"
        " (SELECT t.id FROM curation_tag t WHERE t.prompt_id = p.id LIMIT 1)"
        " FROM curation_prompt p WHERE p.project_id = %s AND p.status = %s AND p.review_count + p.claimed < %s"
        " AND (SELECT c.id FROM curation_completion c WHERE c.prompt_id = p.id LIMIT 1) IS NOT NULL"
        " AND (SELECT r.id FROM curation_review r WHERE r.prompt_id = p.id AND r.annotator_id = %s"
        " AND NOT r.superseded LIMIT 1) IS NULL"
        f" ORDER BY p.project_id, p.status, p.id LIMIT 1{_lock(skip_locked=True)}",
        [annotator_id, project_id, status, reviews_required, annotator_id],
    )
    if not rows:
        return None
    prompt = cols.instance(rows[0])
    prompt.my_review_id, prompt.a_flag_id, prompt.a_tag_id = rows[0][len(cols.fields):]
    return prompt


# --- writes ------------------------------------------------------------------------------------------------


def _insert_sql(model: type[Model]) -> tuple[list, str]:
    return _insert_sql_for(connection.vendor, model)


@cache
def _insert_sql_for(vendor: str, model: type[Model]) -> tuple[list, str]:
    quote = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    returning = " RETURNING id" if connection.features.can_return_columns_from_insert else ""
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
           f" VALUES ({', '.join(['%s'] * len(fields))}){returning}")
    return fields, sql


def insert(instance: Model) -> Model:
    """INSERT the new instance (defaults and ``auto_now_add`` applied as ``save`` would) and set its id."""
    fields, sql = _insert_sql(type(instance))
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        instance.pk = cursor.fetchone()[0] if connection.features.can_return_columns_from_insert else cursor.lastrowid
    instance._state.adding, instance._state.db = False, connection.alias
    return instance


def update(instance: Model, fields: list[str] | None = None) -> None:
    """UPDATE these fields of a stored instance, or all of them, as ``save(update_fields=...)`` or ``save()``
    would (``auto_now`` ones are set)."""
    meta = instance._meta
    chosen = ([meta.get_field(name) for name in fields] if fields is not None
              else [f for f in meta.concrete_fields if not f.primary_key])
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(f.column)} = %s" for f in chosen)
    params = [f.get_db_prep_save(f.pre_save(instance, False), connection) for f in chosen]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {quote(meta.pk.column)} = %s",
                       [*params, instance.pk])


def assignment_release(*, prompt_id: int, annotator_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM curation_assignment WHERE prompt_id = %s AND annotator_id = %s",
                       [prompt_id, annotator_id])
