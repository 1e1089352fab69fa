"""PendingFlag: one row per import batch holding its prompt ids, instead of one row per prompt.

Marks left by an unfinished follow-up job are kept: each becomes a row of one id.
"""

from django.db import migrations, models


def marks_to_lists(apps, schema_editor):
    PendingFlag = apps.get_model("curation", "PendingFlag")
    for mark in PendingFlag.objects.all().iterator(chunk_size=2000):
        PendingFlag.objects.filter(pk=mark.pk).update(prompt_ids=[mark.prompt_id], size=1)


def lists_to_marks(apps, schema_editor):
    PendingFlag = apps.get_model("curation", "PendingFlag")
    for mark in list(PendingFlag.objects.all()):
        for prompt_id in mark.prompt_ids:
            PendingFlag.objects.create(import_job_id=mark.import_job_id, prompt_id=prompt_id)
        mark.delete()


class Migration(migrations.Migration):

    dependencies = [
        ("curation", "0012_import_quality_follow_up"),
    ]

    operations = [
        migrations.AddField(
            model_name="pendingflag",
            name="prompt_ids",
            field=models.JSONField(default=list),
        ),
        migrations.AddField(
            model_name="pendingflag",
            name="size",
            field=models.PositiveIntegerField(default=0, help_text="How many prompt ids the row holds."),
        ),
        migrations.AlterField(  # nullable for the way back, where list rows are split into per-prompt rows
            model_name="pendingflag",
            name="prompt",
            field=models.ForeignKey(null=True, on_delete=models.deletion.CASCADE, related_name="+", to="curation.prompt"),
        ),
        migrations.RunPython(marks_to_lists, lists_to_marks),
        migrations.RemoveConstraint(
            model_name="pendingflag",
            name="pending_flag_unique",
        ),
        migrations.RemoveField(
            model_name="pendingflag",
            name="prompt",
        ),
    ]
