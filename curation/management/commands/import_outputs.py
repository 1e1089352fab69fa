"""Import a file of teacher outputs into a project: ``import_outputs PATH --project SLUG``."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from curation.models import ImportJob, JobStatus, Project
from curation.services.imports import import_file

SHOWN_ERRORS = 50


class Command(BaseCommand):
    help = "Import teacher outputs (JSONL, OpenAI Batch output, ShareGPT, Alpaca or CSV) into a project."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--format", default="auto", choices=ImportJob.Format.values)
        parser.add_argument("--skip-invalid", action="store_true", help="Import the valid lines, write the rejects.")
        parser.add_argument("--batch-input", type=Path, help="The OpenAI Batch input file (its prompts).")
        parser.add_argument("--rejects", type=Path, help="Where rejected lines go (default: PATH.rejects.jsonl).")
        parser.add_argument("--user", help="Username recorded as the importer.")

    def handle(self, *args, path: Path, project: str, format: str, skip_invalid: bool, batch_input: Path | None,
               rejects: Path | None, user: str | None, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with the slug '{project}'.")
        created_by = get_user_model().objects.filter(username=user).first() if user else None
        if user and created_by is None:
            raise CommandError(f"No user named '{user}'.")
        if skip_invalid and rejects is None:
            rejects = path.with_name(path.name + ".rejects.jsonl")
        job = import_file(
            project=target, path=path, format=format, skip_invalid=skip_invalid, batch_input=batch_input,
            rejects_path=rejects, created_by=created_by,
        )
        self.stdout.write(
            f"Import {job.pk} ({job.detected_format or job.format}): read {job.read_count}, imported "
            f"{job.imported_count}, duplicates {job.duplicate_count}, invalid {job.invalid_count}."
        )
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(self._reasons(job))
        self.stdout.write(self.style.SUCCESS(job.message))
        if job.rejects_path:
            self.stdout.write(f"Rejected lines with their reasons: {job.rejects_path}")
        if (flags := job.flag_job) is not None:
            self.stdout.write(f"Quality flags and search documents: {flags.done} of {flags.total} prompts "
                              f"({flags.get_status_display().lower()}{': ' + flags.error if flags.error else ''}).")

    def _reasons(self, job: ImportJob) -> str:
        lines = [job.message]
        lines += [f"  line {error['line']}: {error['reason']}" for error in job.errors[:SHOWN_ERRORS]]
        if job.invalid_count > SHOWN_ERRORS:
            lines.append(f"  ... and {job.invalid_count - SHOWN_ERRORS} more (all are on import job {job.pk}).")
        return "\n".join(lines)
