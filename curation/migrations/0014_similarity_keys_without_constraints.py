"""Similarity keys without foreign-key constraints, and without the project and completion indexes: derived
rows, eight per text, written by every import's follow-up job, whose commit spent most of its time checking
them; and their lookup index led by the key (see SimilarityKey)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0013_import_marks_by_batch'),
    ]

    operations = [
        migrations.AlterField(
            model_name='similaritykey',
            name='completion',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='curation.completion'),
        ),
        migrations.AlterField(
            model_name='similaritykey',
            name='project',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='curation.project'),
        ),
        migrations.AlterField(
            model_name='similaritykey',
            name='prompt',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='curation.prompt'),
        ),
        migrations.RemoveIndex(
            model_name='similaritykey',
            name='similarity_key_idx',
        ),
        migrations.AddIndex(
            model_name='similaritykey',
            index=models.Index(fields=['key', 'project', 'kind'], name='similarity_lookup_idx'),
        ),
    ]
