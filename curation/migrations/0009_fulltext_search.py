"""Full-text search for browse: one search document per prompt (its text and its completions' texts), indexed.

PostgreSQL: a side table ``curation_prompt_search(prompt_id, document tsvector)`` with a GIN index. Browse
filters prompts by ``id IN (SELECT prompt_id ... WHERE document @@ query)``, which the planner turns into a
semi-join: a rare term is looked up in the GIN index, a common one is checked row by row while walking
prompts newest first, so both stop after one page. The ``simple`` configuration lowercases and splits
words without stemming: "capital" does not match "capitalization" (English stemming would make both "capit").

SQLite: an FTS5 table ``curation_prompt_fts`` (rowid = prompt id; unicode61 tokenizer: whole words,
case- and accent-insensitive).

Triggers keep both in step with every write path (the ORM, bulk_create, COPY): statement-level with
transition tables on PostgreSQL, so a COPY of 10,000 completions updates the documents in one statement.
"""

from django.db import migrations

POSTGRES_FORWARD = [
    """
    CREATE TABLE curation_prompt_search (prompt_id bigint PRIMARY KEY, document tsvector NOT NULL)
    """,
    # No foreign key: Django's test flush truncates its own tables only, and a reference from a table it does
    # not know would refuse that. Deletes and truncates of prompts are followed by triggers instead.
    """
    CREATE FUNCTION curation_prompt_search_prompts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM curation_prompt_search WHERE prompt_id IN (SELECT id FROM old_rows);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER curation_prompt_search_prompts_deleted AFTER DELETE ON curation_prompt
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION curation_prompt_search_prompts_deleted()
    """,
    """
    CREATE FUNCTION curation_prompt_search_prompts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        TRUNCATE curation_prompt_search;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER curation_prompt_search_prompts_truncated AFTER TRUNCATE ON curation_prompt
    FOR EACH STATEMENT EXECUTE FUNCTION curation_prompt_search_prompts_truncated()
    """,
    "CREATE INDEX curation_prompt_search_gin ON curation_prompt_search USING gin (document)",
    # New prompts: their own text. (A prompt's completions always arrive after it.)
    """
    CREATE FUNCTION curation_prompt_search_prompts_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO curation_prompt_search (prompt_id, document)
        SELECT id, to_tsvector('simple', text) FROM new_rows
        ON CONFLICT (prompt_id) DO UPDATE SET document = EXCLUDED.document || curation_prompt_search.document;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER curation_prompt_search_prompts_added AFTER INSERT ON curation_prompt
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION curation_prompt_search_prompts_added()
    """,
    # New completions: append their words to their prompts' documents, one row per prompt per statement.
    """
    CREATE FUNCTION curation_prompt_search_completions_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO curation_prompt_search (prompt_id, document)
        SELECT prompt_id, to_tsvector('simple', string_agg(text, ' ')) FROM new_rows GROUP BY prompt_id
        ON CONFLICT (prompt_id) DO UPDATE SET document = curation_prompt_search.document || EXCLUDED.document;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER curation_prompt_search_completions_added AFTER INSERT ON curation_completion
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION curation_prompt_search_completions_added()
    """,
    # Changed or removed text (rare): rebuild the affected prompts' documents from scratch.
    """
    CREATE FUNCTION curation_prompt_search_rebuild(ids bigint[]) RETURNS void LANGUAGE sql AS $$
        UPDATE curation_prompt_search s SET document = to_tsvector('simple', p.text || ' ' || coalesce(
            (SELECT string_agg(c.text, ' ') FROM curation_completion c WHERE c.prompt_id = p.id), ''))
        FROM curation_prompt p WHERE p.id = s.prompt_id AND s.prompt_id = ANY (ids)
    $$
    """,
    """
    CREATE FUNCTION curation_prompt_search_completions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM curation_prompt_search_rebuild(ARRAY(SELECT DISTINCT prompt_id FROM old_rows));
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER curation_prompt_search_completions_updated AFTER UPDATE ON curation_completion
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION curation_prompt_search_completions_changed()
    """,
    """
    CREATE TRIGGER curation_prompt_search_completions_deleted AFTER DELETE ON curation_completion
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION curation_prompt_search_completions_changed()
    """,
    """
    CREATE FUNCTION curation_prompt_search_prompts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM curation_prompt_search_rebuild(ARRAY(SELECT o.id FROM old_rows o JOIN new_rows n ON n.id = o.id
                                                     WHERE n.text IS DISTINCT FROM o.text));
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER curation_prompt_search_prompts_updated AFTER UPDATE ON curation_prompt
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION curation_prompt_search_prompts_changed()
    """,
    # Existing data.
    """
    INSERT INTO curation_prompt_search (prompt_id, document)
    SELECT p.id, to_tsvector('simple', p.text || ' ' || coalesce(
        (SELECT string_agg(c.text, ' ') FROM curation_completion c WHERE c.prompt_id = p.id), ''))
    FROM curation_prompt p
    """,
]

POSTGRES_BACKWARD = [
    "DROP TRIGGER IF EXISTS curation_prompt_search_prompts_deleted ON curation_prompt",
    "DROP TRIGGER IF EXISTS curation_prompt_search_prompts_truncated ON curation_prompt",
    "DROP TRIGGER IF EXISTS curation_prompt_search_prompts_updated ON curation_prompt",
    "DROP TRIGGER IF EXISTS curation_prompt_search_prompts_added ON curation_prompt",
    "DROP TRIGGER IF EXISTS curation_prompt_search_completions_added ON curation_completion",
    "DROP TRIGGER IF EXISTS curation_prompt_search_completions_updated ON curation_completion",
    "DROP TRIGGER IF EXISTS curation_prompt_search_completions_deleted ON curation_completion",
    "DROP FUNCTION IF EXISTS curation_prompt_search_prompts_changed()",
    "DROP FUNCTION IF EXISTS curation_prompt_search_completions_changed()",
    "DROP FUNCTION IF EXISTS curation_prompt_search_rebuild(bigint[])",
    "DROP FUNCTION IF EXISTS curation_prompt_search_completions_added()",
    "DROP FUNCTION IF EXISTS curation_prompt_search_prompts_added()",
    "DROP FUNCTION IF EXISTS curation_prompt_search_prompts_deleted()",
    "DROP FUNCTION IF EXISTS curation_prompt_search_prompts_truncated()",
    "DROP TABLE IF EXISTS curation_prompt_search",
]

# The whole document of one prompt, for rebuilds.
SQLITE_DOCUMENT = """(SELECT p.text || ' ' || coalesce((SELECT group_concat(c.text, ' ') FROM curation_completion c
                                                        WHERE c.prompt_id = p.id), '')
                      FROM curation_prompt p WHERE p.id = {id})"""

SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE curation_prompt_fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')",
    """
    CREATE TRIGGER curation_prompt_fts_prompt_added AFTER INSERT ON curation_prompt BEGIN
        INSERT INTO curation_prompt_fts (rowid, body) VALUES (new.id, new.text);
    END
    """,
    f"""
    CREATE TRIGGER curation_prompt_fts_prompt_updated AFTER UPDATE OF text ON curation_prompt BEGIN
        UPDATE curation_prompt_fts SET body = {SQLITE_DOCUMENT.format(id="new.id")} WHERE rowid = new.id;
    END
    """,
    """
    CREATE TRIGGER curation_prompt_fts_prompt_deleted AFTER DELETE ON curation_prompt BEGIN
        DELETE FROM curation_prompt_fts WHERE rowid = old.id;
    END
    """,
    """
    CREATE TRIGGER curation_prompt_fts_completion_added AFTER INSERT ON curation_completion BEGIN
        UPDATE curation_prompt_fts SET body = body || ' ' || new.text WHERE rowid = new.prompt_id;
    END
    """,
    f"""
    CREATE TRIGGER curation_prompt_fts_completion_updated AFTER UPDATE OF text, prompt_id ON curation_completion BEGIN
        UPDATE curation_prompt_fts SET body = {SQLITE_DOCUMENT.format(id="old.prompt_id")} WHERE rowid = old.prompt_id;
        UPDATE curation_prompt_fts SET body = {SQLITE_DOCUMENT.format(id="new.prompt_id")} WHERE rowid = new.prompt_id;
    END
    """,
    f"""
    CREATE TRIGGER curation_prompt_fts_completion_deleted AFTER DELETE ON curation_completion BEGIN
        UPDATE curation_prompt_fts SET body = {SQLITE_DOCUMENT.format(id="old.prompt_id")} WHERE rowid = old.prompt_id;
    END
    """,
    """
    INSERT INTO curation_prompt_fts (rowid, body)
    SELECT p.id, p.text || ' ' || coalesce((SELECT group_concat(c.text, ' ') FROM curation_completion c
                                            WHERE c.prompt_id = p.id), '')
    FROM curation_prompt p
    """,
]

SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS curation_prompt_fts_prompt_added",
    "DROP TRIGGER IF EXISTS curation_prompt_fts_prompt_updated",
    "DROP TRIGGER IF EXISTS curation_prompt_fts_prompt_deleted",
    "DROP TRIGGER IF EXISTS curation_prompt_fts_completion_added",
    "DROP TRIGGER IF EXISTS curation_prompt_fts_completion_updated",
    "DROP TRIGGER IF EXISTS curation_prompt_fts_completion_deleted",
    "DROP TABLE IF EXISTS curation_prompt_fts",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            # Other databases keep the substring search of curation.selectors.search.
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("curation", "0008_teacher_engine")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
