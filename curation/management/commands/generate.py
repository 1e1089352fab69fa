"""Generate teacher candidates for a project's prompts: ``generate --project SLUG --teacher NAME``."""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from curation.models import GenerationJob, JobStatus, Project
from curation.selectors.generation import teacher_lookup
from curation.services.generation import generation_job_cancel, generation_job_create, generation_job_run


class Command(BaseCommand):
    help = "Queue a generation job (the worker's generation queue runs it); --wait follows its progress."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--teacher", required=True, help="The teacher's name.")
        parser.add_argument("--n", type=int, help="Candidates per prompt (default: the project's setting).")
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--top-p", type=float)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--system-prompt", help="Default: the project's system prompt.")
        parser.add_argument("--all", action="store_true", help="All prompts, not only the pending ones.")
        parser.add_argument("--wait", action="store_true", help="Print progress until the job ends; Ctrl+C cancels.")
        parser.add_argument("--inline", action="store_true", help="Run here instead of in a worker.")

    def handle(self, *args, project: str, teacher: str, all: bool, wait: bool, inline: bool, **options):  # noqa: A002
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with the slug '{project}'.")
        chosen = teacher_lookup(target, name=teacher)
        if chosen is None:
            raise CommandError(f"No teacher named '{teacher}' for the project '{project}'.")
        params = {key: options[key] for key in ("n", "max_new_tokens", "temperature", "top_p", "seed",
                                                "system_prompt")}
        try:
            job = generation_job_create(
                project=target, teacher=chosen, selection={"mode": "all" if all else "pending"},
                enqueue=not inline, **params,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"Generation job #{job.pk}: {job.total} prompts, {job.n} candidates each, "
                          f"teacher {chosen.name}.")
        if inline:
            generation_job_run(job_id=job.pk)
        elif wait:
            self._follow(job)
        job.refresh_from_db()
        self._report(job)
        if job.status == JobStatus.FAILED:
            raise CommandError(f"Generation job #{job.pk} failed: {job.error}")

    def _follow(self, job: GenerationJob) -> None:
        shown = None
        try:
            while job.status not in JobStatus.finished():
                time.sleep(1)
                job.refresh_from_db()
                line = f"{job.status}: {job.done}/{job.total} prompts, {job.tokens_per_second:.1f} tokens/s"
                if job.eta_seconds is not None and job.status == JobStatus.RUNNING:
                    line += f", about {job.eta_seconds:.0f} s left"
                if line != shown:
                    self.stdout.write(line)
                    shown = line
        except KeyboardInterrupt:
            try:
                generation_job_cancel(job=job)
            except ValidationError:  # it finished meanwhile
                return
            self.stdout.write("Cancel requested: the worker stops after its current batch.")

    def _report(self, job: GenerationJob) -> None:
        self.stdout.write(f"Job #{job.pk} {job.status}: {job.done}/{job.total} prompts, "
                          f"{job.generated_tokens} tokens, {job.tokens_per_second:.1f} tokens/s.")
