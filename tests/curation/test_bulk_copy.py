"""Bulk inserts keep every character: COPY's text format written by hand (PostgreSQL), VALUES (SQLite).

The integration run executes this on PostgreSQL, where ``curation.bulk`` escapes COPY's text format itself.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from curation.bulk import insert_rows, to_json
from curation.models import Completion, Prompt
from tests.factories import PromptFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TEXTS = ["back\\slash", "tab\there", "new\nline", "carriage\rreturn", "\\N", "\\.", "\\\\t literal", "é 中 😀 \u2028",
         "ends with backslash\\", "", "  spaces  ", "\\n written out", "a\r\n\tb\\"]


def test_every_character_survives_a_bulk_insert(db):
    prompt = PromptFactory()
    rows = [(prompt.pk, text, f"{i:064x}", "src\t\\", to_json({"k": text}), "stop", None, len(text))
            for i, text in enumerate(TEXTS)]
    insert_rows(Completion, ("prompt", "text", "text_hash", "source", "params", "finish_reason", "logprobs", "length"),
                rows, ignore_conflicts=False)
    stored = {c.text_hash: c for c in Completion.objects.filter(prompt=prompt)}
    for i, text in enumerate(TEXTS):
        completion = stored[f"{i:064x}"]
        assert (completion.text, completion.source, completion.params, completion.logprobs, completion.length) == (
            text, "src\t\\", {"k": text}, None, len(text))
        assert completion.created_at is not None  # the model default, rendered once for every row


def test_a_row_with_an_unusual_value_goes_through_the_driver(db):
    prompt = PromptFactory()
    # A Decimal is not a plain value for the hand-written path: that row, and those after it, take the driver's.
    rows = [(prompt.pk, "one", "1" * 64, "s", "{}", "stop", None, 3),
            (prompt.pk, "two", "2" * 64, "s", "{}", "stop", None, Decimal(3))]
    inserted = insert_rows(Completion, ("prompt", "text", "text_hash", "source", "params", "finish_reason", "logprobs",
                                        "length"), rows, returning=("text",))
    assert sorted(inserted) == [("one",), ("two",)]
    assert sorted(Completion.objects.filter(prompt=prompt).values_list("text", "length")) == [("one", 3), ("two", 3)]


def test_returning_skips_conflicts_and_reports_only_new_rows(db):
    project = PromptFactory().project
    fields = ("project", "messages", "text", "content_hash", "external_id", "metadata")
    row = (project.pk, to_json([{"role": "user", "content": "x\ty"}]), "x\ty", "a" * 64, "", "{}")
    assert insert_rows(Prompt, fields, [row], returning=("content_hash",)) == [("a" * 64,)]
    assert insert_rows(Prompt, fields, [row], returning=("content_hash",)) == []
    assert Prompt.objects.get(content_hash="a" * 64).messages == [{"role": "user", "content": "x\ty"}]
