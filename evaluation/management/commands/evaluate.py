"""Evaluate models against a teacher: ``evaluate --project SLUG --models ... --tasks ... [--wait]``."""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from curation.models import DatasetVersion, JobStatus, Project
from curation.selectors.access import SERVER_SHELL
from curation.selectors.generation import teacher_lookup
from evaluation.forms import model_from_line
from evaluation.models import EvaluationRun
from evaluation.selectors import run_comparison
from evaluation.services import evaluation_run_cancel, evaluation_run_create, evaluation_run_execute

MODELS_HELP = (
    "teacher:NAME (a registered teacher), training:ID (a training run's student), "
    "[label=]hf:FOLDER, [label=]gguf:FILE, [label=]api:URL#MODEL; the label 'teacher' marks the teacher."
)


class Command(BaseCommand):
    help = "Queue an evaluation run (the worker's evaluation queue runs it); --wait follows it and prints the report."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--models", nargs="+", required=True, help=MODELS_HELP)
        parser.add_argument("--tasks", nargs="+", help="heldout (default with --dataset-version), lm-eval task "
                                                       "names, or folders of task YAML.")
        parser.add_argument("--dataset-version", type=int, help="The version number whose held-out split is used.")
        parser.add_argument("--name", default="")
        parser.add_argument("--limit", type=float)
        parser.add_argument("--num-fewshot", type=int)
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--max-gen-toks", type=int, default=256)
        parser.add_argument("--no-chat-template", action="store_true")
        parser.add_argument("--wait", action="store_true", help="Print progress until the run ends; Ctrl+C cancels.")
        parser.add_argument("--inline", action="store_true", help="Run here instead of in a worker.")

    def handle(self, *args, project: str, models: list[str], wait: bool, inline: bool, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with the slug '{project}'.")
        version = None
        if options["dataset_version"] is not None:
            version = DatasetVersion.objects.filter(project=target, number=options["dataset_version"]).first()
            if version is None:
                raise CommandError(f"{project} has no dataset version {options['dataset_version']}.")
        limit = options["limit"]
        run_options = {"batch_size": options["batch_size"], "max_gen_toks": options["max_gen_toks"],
                       "apply_chat_template": not options["no_chat_template"], "num_fewshot": options["num_fewshot"],
                       "limit": int(limit) if limit is not None and limit >= 1 else limit}
        try:
            run = evaluation_run_create(
                project=target, created_by=None, actor=SERVER_SHELL, dataset_version=version, name=options["name"],
                models=[self._model(target, text) for text in models], tasks=options["tasks"] or [],
                options={k: v for k, v in run_options.items() if v is not None}, enqueue=not inline,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"Evaluation run #{run.pk}: {', '.join(m['label'] for m in run.models_spec)} "
                          f"on {', '.join(run.tasks)}.")
        if inline:
            evaluation_run_execute(run_id=run.pk)
        elif wait:
            self._follow(run)
        run.refresh_from_db()
        self._report(run)
        if run.status == JobStatus.FAILED:
            raise CommandError(f"Evaluation run #{run.pk} failed: {run.error}")

    def _model(self, project: Project, text: str) -> dict:
        kind, _, rest = text.partition(":")
        if kind == "teacher" and rest:
            teacher = teacher_lookup(project, name=rest)
            if teacher is None:
                raise CommandError(f"No teacher named '{rest}' for the project '{project.slug}'.")
            return {"teacher_id": teacher.pk, "role": "teacher"}
        if kind == "training" and rest.isdigit():
            return {"training_run_id": int(rest)}
        model = model_from_line(text)
        if model is None:
            raise CommandError(f"Cannot read the model {text!r}. Use {MODELS_HELP}")
        return model

    def _follow(self, run: EvaluationRun) -> None:
        shown = None
        try:
            while run.status not in JobStatus.finished():
                time.sleep(1)
                run.refresh_from_db()
                line = f"{run.status}: {100 * run.progress:.0f}% {run.stage}"
                if line != shown:
                    self.stdout.write(line)
                    shown = line
        except KeyboardInterrupt:
            try:
                evaluation_run_cancel(run=run)
            except ValidationError:  # it finished meanwhile
                return
            self.stdout.write("Cancel requested: the current model's process is stopped.")

    def _report(self, run: EvaluationRun) -> None:
        self.stdout.write(f"Evaluation run #{run.pk} {run.status}.")
        comparison = run_comparison(run)
        for row in comparison.metrics:
            teacher = f"teacher {row.teacher.value:.4f}" if row.teacher and row.teacher.value is not None else ""
            cells = [f"{c.label} {c.value:.4f}" + (f" ({100 * c.retention:.0f}%)" if c.retention is not None else "")
                     for c in row.students if c.value is not None]
            self.stdout.write(f"  {row.task:16} {row.metric:16} {teacher}  " + "  ".join(cells))
        for model in comparison.models:
            m = model.measurements
            self.stdout.write(f"  {model.label}: {m.get('parameter_count')} parameters, "
                              f"{m.get('tokens_per_second')} tokens/s" + "".join(f"; {n}" for n in model.notes))
