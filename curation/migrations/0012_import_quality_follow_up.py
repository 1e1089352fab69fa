"""The follow-up job of an import (quality flags, and on PostgreSQL the search documents), and its marks.

PostgreSQL: the two insert triggers of 0009 skip their work in a transaction that set
``distillery.search_deferred`` (the default import path does, per batch), and
``curation_prompt_search_build(ids)`` writes whole documents for those prompts, which the follow-up job calls.
Building the documents inside the COPY was most of the database's work during an import.
"""

import importlib

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


FULLTEXT = importlib.import_module("curation.migrations.0009_fulltext_search")
DEFERRED = "IF current_setting('distillery.search_deferred', true) = 'on' THEN RETURN NULL; END IF;"


def _deferrable(name: str) -> str:
    """0009's trigger function ``name``, made to return at once when the transaction defers search documents."""
    (original,) = [sql for sql in FULLTEXT.POSTGRES_FORWARD if f"CREATE FUNCTION {name}()" in sql]
    replaced = original.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
    return replaced.replace("BEGIN", f"BEGIN\n        {DEFERRED}", 1)


def _original(name: str) -> str:
    (original,) = [sql for sql in FULLTEXT.POSTGRES_FORWARD if f"CREATE FUNCTION {name}()" in sql]
    return original.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


ADDED = ("curation_prompt_search_prompts_added", "curation_prompt_search_completions_added")
POSTGRES_FORWARD = [
    *(_deferrable(name) for name in ADDED),
    """
    CREATE FUNCTION curation_prompt_search_build(ids bigint[]) RETURNS void LANGUAGE sql AS $$
        INSERT INTO curation_prompt_search (prompt_id, document)
        SELECT p.id, to_tsvector('simple', p.text || ' ' || coalesce(
            (SELECT string_agg(c.text, ' ') FROM curation_completion c WHERE c.prompt_id = p.id), ''))
        FROM curation_prompt p WHERE p.id = ANY (ids)
        ON CONFLICT (prompt_id) DO UPDATE SET document = EXCLUDED.document
    $$
    """,
]
POSTGRES_BACKWARD = [
    "DROP FUNCTION IF EXISTS curation_prompt_search_build(bigint[])",
    *(_original(name) for name in ADDED),
]


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0011_synthesis'),
    ]

    operations = [
        migrations.CreateModel(
            name='QualityFlagJob',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=20)),
                ('attempts', models.PositiveSmallIntegerField(default=0, help_text='Claims by a worker; a job that keeps losing its worker stops being retried.')),
                ('worker', models.CharField(blank=True, help_text='host:pid of the process running it; a dead pid is a lost job.', max_length=200)),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                ('cancel_requested', models.BooleanField(default=False)),
                ('error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('queued_at', models.DateTimeField(default=django.utils.timezone.now, help_text='When it last went into the queue.')),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('total', models.PositiveIntegerField(default=0, help_text='Prompts to flag when the job was queued.')),
                ('done', models.PositiveIntegerField(default=0)),
                ('import_job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='flag_jobs', to='curation.importjob')),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='PendingFlag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('import_job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='curation.importjob')),
                ('prompt', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='curation.prompt')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('import_job', 'prompt'), name='pending_flag_unique')],
            },
        ),
        migrations.RunPython(FULLTEXT._run({"postgresql": POSTGRES_FORWARD}),
                             FULLTEXT._run({"postgresql": POSTGRES_BACKWARD})),
    ]
