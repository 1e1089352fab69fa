"""Full-text search (curation.selectors.search): whole words over prompt and completion texts, kept in step
with every write path by the database's own triggers. Runs on SQLite (FTS5) and, in the integration run's
database, on PostgreSQL (tsvector + GIN)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.models import Completion, Prompt
from curation.selectors import search
from curation.selectors.search import prompts_matching_text, search_words
from tests.factories import CompletionFactory, PromptFactory

pytestmark = pytest.mark.django_db


def found(project, query):
    return set(prompts_matching_text(Prompt.objects.filter(project=project), query).values_list("id", flat=True))


def test_words_not_substrings(project):
    capital = PromptFactory(project=project, text="What is the capital of France?")
    capitalization = PromptFactory(project=project, text="Explain capitalization rules")
    assert found(project, "capital") == {capital.pk}
    assert found(project, "Capitalization") == {capitalization.pk}
    assert found(project, "capita") == set()


def test_every_word_anywhere_in_prompt_or_completions(project):
    item = PromptFactory(project=project, text="Name the largest planet")
    CompletionFactory(prompt=item, text="Jupiter, by far.")
    CompletionFactory(prompt=item, text="Saturn is second")
    other = PromptFactory(project=project, text="Largest ocean?")
    CompletionFactory(prompt=other, text="The Pacific")
    assert found(project, "largest") == {item.pk, other.pk}
    assert found(project, "JUPITER largest") == {item.pk}  # prompt word + completion word
    assert found(project, "jupiter saturn") == {item.pk}  # words from two completions
    assert found(project, "jupiter pacific") == set()


def test_search_stays_inside_the_project(project):
    PromptFactory(text="zebra facts")  # another project
    mine = PromptFactory(project=project, text="zebra stripes")
    assert found(project, "zebra") == {mine.pk}


@pytest.mark.parametrize("query", ['"', "NEAR(a b)", "a:*", "x' OR '1'='1", "-zebra", "col:value", "*", "()"])
def test_query_syntax_is_plain_text(project, query):
    PromptFactory(project=project, text="plain words only")
    found(project, query)  # must not raise a syntax error from FTS5 or to_tsquery


def test_no_words_match_nothing(project):
    PromptFactory(project=project, text="anything")
    assert search_words("  ?! ") == []
    assert found(project, "?!") == set()


def test_changed_and_deleted_completions_leave_the_index(project):
    item = PromptFactory(project=project, text="a question")
    item_id = item.pk
    completion = CompletionFactory(prompt=item, text="aardvark")
    assert found(project, "aardvark") == {item.pk}
    Completion.objects.filter(pk=completion.pk).update(text="wombat")
    assert found(project, "aardvark") == set() and found(project, "wombat") == {item.pk}
    completion.delete()
    assert found(project, "wombat") == set() and found(project, "question") == {item.pk}
    Prompt.objects.filter(pk=item.pk).update(text="a riddle")
    assert found(project, "question") == set() and found(project, "riddle") == {item.pk}
    item.delete()
    assert found(project, "riddle") == set()
    index_table, key = {"postgresql": ("curation_prompt_search", "prompt_id"),
                        "sqlite": ("curation_prompt_fts", "rowid")}[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {index_table} WHERE {key} = %s", [item_id])  # noqa: S608
        assert cursor.fetchone()[0] == 0  # the document went with its prompt


def test_bulk_inserted_rows_are_indexed(project):
    prompts = Prompt.objects.bulk_create(
        [Prompt(project=project, messages=[], text=f"bulk prompt {i}", content_hash=f"h{i}") for i in range(3)]
    )
    Completion.objects.bulk_create([Completion(prompt=p, text="kumquat", text_hash=f"c{p.pk}") for p in prompts])
    assert found(project, "kumquat") == {p.pk for p in prompts}


def test_uses_the_index():
    """The search runs on the full-text index, not a scan with LIKE."""
    project = PromptFactory(text="indexed").project
    with CaptureQueriesContext(connection) as captured:
        list(prompts_matching_text(Prompt.objects.filter(project=project), "indexed"))
    sql = " ".join(q["sql"] for q in captured.captured_queries)
    index_table = {"postgresql": "curation_prompt_search", "sqlite": "curation_prompt_fts"}[connection.vendor]
    assert index_table in sql and "LIKE" not in sql.upper()


def test_common_words_take_the_join_and_find_the_same(project, monkeypatch):
    """Past RARE_MATCHES documents PostgreSQL joins instead of listing ids; both ways find the same prompts."""
    items = [PromptFactory(project=project, text=f"common word {i}") for i in range(3)]
    PromptFactory(project=project, text="other")
    monkeypatch.setattr(search, "RARE_MATCHES", 1)
    assert found(project, "common word") == {p.pk for p in items}
    assert found(project, "other") == {Prompt.objects.get(project=project, text="other").pk}


def test_imported_words_are_found_once_the_import_and_its_follow_up_are_done(project, tmp_path):
    """The default import path leaves the search documents of what it inserts (PostgreSQL) to its follow-up
    job: the words are found after it, in new prompts and in new completions of existing prompts alike."""
    import json

    from curation.models import QualityFlagJob
    from curation.services.imports import import_file
    from curation.services.quality import quality_flag_job_run

    def write(name, records):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return path

    first = import_file(project=project, path=write("a.jsonl", [{"prompt": "Name a fruit", "completion": "kumquat"}]))
    assert first.flag_job.status == "succeeded"  # the command's path runs the follow-up before returning
    assert len(found(project, "kumquat")) == 1 and len(found(project, "fruit")) == 1

    second = import_file(project=project, flags_inline=False, path=write("b.jsonl", [
        {"prompt": "Name a fruit", "completion": "persimmon"}, {"prompt": "Name a river", "completion": "Danube"}]))
    flag_job = QualityFlagJob.objects.get(import_job=second)
    if connection.vendor == "postgresql":
        assert not found(project, "persimmon") and not found(project, "danube")  # deferred to the follow-up
    assert quality_flag_job_run(job_id=flag_job.pk) == "succeeded"
    assert found(project, "persimmon") == found(project, "kumquat") and len(found(project, "danube")) == 1
    assert len(found(project, "river")) == 1 and len(found(project, "fruit")) == 1
