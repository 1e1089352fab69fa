"""Writes to the full-text search index (curation/migrations/0009_fulltext_search.py, 0012).

Triggers keep the index in step with every write. The default import path defers the part that costs most,
building the documents of the prompts it inserts (``search_documents_defer``), and its follow-up job builds
them after the import's commits (``search_documents_build``). SQLite's FTS5 triggers are cheap and never deferred.
"""

from __future__ import annotations

from django.db import connection


def search_documents_defer() -> None:
    """Inserts of prompts and completions in the current transaction leave their search documents to
    ``search_documents_build`` (PostgreSQL; ``SET LOCAL`` ends with the transaction or its savepoint)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL distillery.search_deferred = 'on'")


def search_documents_build(prompt_ids: list[int]) -> None:
    """Write the whole search documents (text and every completion) of these prompts; idempotent."""
    if connection.vendor == "postgresql" and prompt_ids:
        with connection.cursor() as cursor:
            cursor.execute("SELECT curation_prompt_search_build(%s::bigint[])", [list(prompt_ids)])
