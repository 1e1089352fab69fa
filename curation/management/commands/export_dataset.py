"""Export a dataset version as JSON lines for training: ``export_dataset VERSION_ID --format sft --out PATH``."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from curation.models import DatasetVersion
from curation.services.datasets import EXPORT_FORMATS, EXPORT_SPLITS, dataset_export


class Command(BaseCommand):
    help = "Write a dataset version as sft, prompt-completion or dpo JSON lines (byte-identical on repeat)."

    def add_arguments(self, parser):
        parser.add_argument("version_id", type=int)
        parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
        parser.add_argument("--split", default="train", choices=EXPORT_SPLITS)
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args, version_id: int, format: str, split: str, out: Path, **options):
        version = DatasetVersion.objects.select_related("project").filter(pk=version_id).first()
        if version is None:
            raise CommandError(f"No dataset version with the id {version_id}.")
        try:
            count = dataset_export(version=version, format=format, split=split, out=out)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"Wrote {count} {format} lines ({split}) of {version} to {out}")
        if count == 0:
            self.stderr.write(self.style.WARNING("The export is empty: no rows (or no preference pairs) in this split."))
