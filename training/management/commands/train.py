"""`manage.py train --version ID [--student derive|MODEL] [--method sft] [--wait]`: queue (or run) a training run."""

from __future__ import annotations

import json
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from curation.models import DatasetVersion, JobStatus
from curation.selectors.generation import teacher_lookup
from training.models import TrainingRun
from training.services import training_run_create, training_run_execute


class Command(BaseCommand):
    help = "Train a student on a frozen dataset version, through the same service as the web form and the API."

    def add_base_argument(self, parser, *args, **kwargs):
        if "--version" in args:
            return  # here --version names the dataset version, not Django's version
        super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--version", type=int, required=True, help="dataset version id")
        parser.add_argument("--method", choices=TrainingRun.Method.values, default=TrainingRun.Method.SFT)
        parser.add_argument("--student", default="derive",
                            help="'derive' (K of the teacher's layers, the default) or a registered model's name")
        parser.add_argument("--lora", action="store_true", help="train LoRA adapters on the --student model")
        parser.add_argument("--teacher", help="a local teacher's name (default: the project's first model folder)")
        parser.add_argument("--keep-layers", type=int, help="K for a derived student (default 10)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--name", default="")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="a hyperparameter, e.g. --set max_steps=100 --set learning_rate=5e-5 (JSON values)")
        parser.add_argument("--wait", action="store_true", help="print progress until the run finishes")
        parser.add_argument("--now", action="store_true", help="train in this process instead of a worker")

    def handle(self, *args, **options):
        version = DatasetVersion.objects.select_related("project").filter(pk=options["version"]).first()
        if version is None:
            raise CommandError(f"No dataset version {options['version']}.")
        teacher = None
        if options["teacher"]:
            teacher = teacher_lookup(version.project, name=options["teacher"])
            if teacher is None:
                raise CommandError(f"No teacher '{options['teacher']}' for {version.project}.")
        derive = options["student"] == "derive"
        if derive and options["lora"]:
            raise CommandError("--lora needs --student MODEL (a registered base model).")
        source = "derive" if derive else ("lora" if options["lora"] else "folder")
        try:
            run = training_run_create(
                dataset_version=version, method=options["method"], student_source=source,
                student_path="" if derive else options["student"], teacher=teacher,
                keep_layers=options["keep_layers"], hyperparams=self._hyperparams(options["set"]),
                seed=options["seed"], name=options["name"], enqueue=not options["now"],
            )
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        self.stdout.write(f"Training run #{run.pk} ({run.name}) {'starting' if options['now'] else 'queued'}.")
        if options["now"]:
            training_run_execute(run_id=run.pk)
        elif options["wait"]:
            self._wait(run)
        run.refresh_from_db()
        if options["now"] or options["wait"]:
            self._summary(run)

    def _hyperparams(self, pairs: list[str]) -> dict:
        values = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            if not sep:
                raise CommandError(f"--set takes KEY=VALUE, not {pair!r}.")
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError:
                values[key] = raw  # a bare word, e.g. --set lr_scheduler=linear
        return values

    def _wait(self, run: TrainingRun) -> None:
        last = None
        while True:
            run.refresh_from_db()
            line = (f"{run.status} step {run.step}/{run.total_steps or '?'} loss {run.metrics.get('loss', '-')} "
                    f"tokens/s {run.metrics.get('tokens_per_second', '-')} eta {run.metrics.get('eta_seconds', '-')}s")
            if line != last:
                self.stdout.write(line)
                last = line
            if run.status in JobStatus.finished():
                return
            time.sleep(2)

    def _summary(self, run: TrainingRun) -> None:
        if run.status == JobStatus.SUCCEEDED:
            self.stdout.write(self.style.SUCCESS(f"Succeeded: final loss {run.metrics.get('final_loss')}, "
                                                 f"student in {run.model_dir}"))
        elif run.status == JobStatus.FAILED:
            raise CommandError(f"Run #{run.pk} failed: {run.error}")
        else:
            self.stdout.write(f"Run #{run.pk} is {run.status}.")
