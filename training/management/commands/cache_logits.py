"""`manage.py cache_logits VERSION_ID --teacher NAME [--top-k K] [--wait | --now]`: the teacher's top-k logits."""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from curation.models import DatasetVersion, JobStatus
from curation.selectors.generation import teacher_lookup
from training.logit_caches import logit_cache_create, logit_cache_run
from training.models import LogitCache
from training.selectors import default_teacher


class Command(BaseCommand):
    help = ("Cache a teacher's top-k log-probabilities over a dataset version's training export, through "
            "the same service as the button and the API; KD runs on that version then need no teacher in memory.")

    def add_arguments(self, parser):
        parser.add_argument("version_id", type=int, help="dataset version id")
        parser.add_argument("--teacher", help="a teacher's name: a local model folder, or an API teacher naming its "
                            "tokenizer (default: the project's first model folder)")
        parser.add_argument("--top-k", type=int, default=32)
        parser.add_argument("--wait", action="store_true", help="print progress until a worker finishes it")
        parser.add_argument("--now", action="store_true", help="compute it in this process instead of a worker")

    def handle(self, *args, **options):
        version = DatasetVersion.objects.select_related("project").filter(pk=options["version_id"]).first()
        if version is None:
            raise CommandError(f"No dataset version {options['version_id']}.")
        name = options["teacher"]
        teacher = teacher_lookup(version.project, name=name) if name else default_teacher(version.project)
        if teacher is None:
            raise CommandError(f"No teacher {name or ''} in project {version.project.slug}.".replace("  ", " "))
        try:
            cache = logit_cache_create(dataset_version=version, teacher=teacher, top_k=options["top_k"],
                                       enqueue=not options["now"])
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(f"logit cache #{cache.pk}: {cache} ({cache.status})")
        if options["now"] and cache.status == JobStatus.QUEUED:
            logit_cache_run(job_id=cache.pk)
        elif options["wait"]:
            while cache.status not in JobStatus.finished():
                time.sleep(2)
                cache = LogitCache.objects.get(pk=cache.pk)
                self.stdout.write(f"  {cache.status} {100 * cache.progress:.0f}%")
        cache = LogitCache.objects.get(pk=cache.pk)
        if cache.status == JobStatus.FAILED:
            raise CommandError(cache.error)
        self.stdout.write(self.style.SUCCESS(
            f"{cache.status}: {cache.tokens} tokens x top-{cache.top_k}, {cache.size_bytes} bytes, "
            f"sha256 {cache.sha256[:16] or '-'}, in {cache.folder}"))
