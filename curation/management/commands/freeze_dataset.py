"""Freeze a project's approved prompts into a new immutable dataset version."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from curation.models import Project
from curation.services.datasets import dataset_version_freeze


class Command(BaseCommand):
    help = "Freeze the approved prompts of a project into a new dataset version; prints its id and hash."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--heldout-fraction", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--note", default="")

    def handle(self, *args, project: str, heldout_fraction: float, seed: int, note: str, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with the slug '{project}'.")
        try:
            version = dataset_version_freeze(project=target, heldout_fraction=heldout_fraction, seed=seed, note=note)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            f"Dataset version {version.pk} ({version}): {version.row_count} rows, {version.train_count} train, "
            f"{version.heldout_count} held-out, {version.pair_count} preference pairs."
        )
        self.stdout.write(f"id {version.pk} hash {version.content_hash}")
