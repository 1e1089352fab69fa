"""Every write of the evaluation app: create, run, cancel, send regressions back to curation.

The web views, the API, the admin and the ``evaluate`` command all call these. The
run itself (``evaluation_run_execute``) is the body of a Celery task on the
``evaluation`` queue; it holds no transaction while models run, and each model runs
in its own child process through ``evaluation.harness``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.limits import is_db_id
from curation.jobs import services as jobs
from curation.models import DatasetVersion, JobStatus, Project, ServerResource, Teacher
from curation.selectors.access import is_operator
from curation.services.trust import (
    check_key_env,
    check_operator,
    check_outbound_url,
    key_env_allowed,
    registered_model_path,
    registered_resource,
)
from curation.teachers.paths import in_data_dir
from evaluation.harness import (
    ChildDied,
    EvalOptions,
    EvaluationCancelled,
    HarnessError,
    HeldoutSpec,
    ModelResult,
    ModelSpec,
    plan_runs,
    run_model_subprocess,
)
from evaluation.models import EvaluationRun, EvaluationSample

logger = logging.getLogger(__name__)

HELDOUT = "heldout"
REGRESSION_FLAG = "eval-regression"
OPTION_LIMITS = {"batch_size": (1, 256), "num_fewshot": (0, 64), "max_gen_toks": (1, 4096),
                 "speed_batch_size": (1, 256), "speed_new_tokens": (1, 2048)}
OPTIONS = {"limit", "num_fewshot", "apply_chat_template", "batch_size", "max_gen_toks", "fidelity",
           "speed_batch_size", "speed_new_tokens", "references"}
REFERENCES = ("curated", "teacher_greedy")


def _clean_options(options: dict | None) -> dict:
    options = dict(options or {})
    unknown = set(options) - OPTIONS
    if unknown:
        raise ValidationError({"options": f"Unknown options: {', '.join(sorted(unknown))}."})
    clean = {"apply_chat_template": bool(options.get("apply_chat_template", True)),
             "batch_size": options.get("batch_size", 8), "max_gen_toks": options.get("max_gen_toks", 256),
             # Fidelity and fixed-length speed run whenever a local teacher and a held-out set are there.
             "fidelity": bool(options.get("fidelity", True)),
             "speed_batch_size": options.get("speed_batch_size", 8), "speed_new_tokens": options.get("speed_new_tokens", 64),
             # Held-out references: the curated replies, or the teacher's greedy answers (generated once, stored).
             "references": options.get("references", "curated")}
    if clean["references"] not in REFERENCES:
        raise ValidationError({"options": f"references must be one of {', '.join(REFERENCES)}."})
    for key, (low, high) in OPTION_LIMITS.items():
        value = options.get(key, clean.get(key))
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationError({"options": f"{key} must be a whole number from {low} to {high}."})
        clean[key] = value
    limit = options.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
            raise ValidationError({"options": "limit must be a positive number (a count, or a fraction below 1)."})
        clean["limit"] = limit
    return clean


def _local_path(path: str) -> Path:
    # The same rule as teachers and training students: relative paths live in the data dir.
    return in_data_dir(path, Path(settings.DATA_DIR))


def _model_path(raw_path: str, actor) -> Path:
    """A registered model by name (anyone), or, for an operator, any path on the server."""
    resource = registered_resource(ServerResource.Kind.MODEL, raw_path)
    if resource is not None:
        return resource.full_path
    if not is_operator(actor):
        return registered_model_path(raw_path, field="models")  # raises, listing what may be picked
    path = _local_path(raw_path)
    if not path.exists():
        raise ValidationError({"models": f"No model at {path}."})
    return path


def _teacher_spec(project: Project, teacher_id: int) -> dict:
    teacher = Teacher.objects.filter(Q(project=project) | Q(project__isnull=True), pk=teacher_id).first()
    if teacher is None:
        raise ValidationError({"models": f"Teacher {teacher_id} does not exist in this project."})
    spec = {"label": teacher.name, "role": "teacher", "source": {"teacher_id": teacher.pk}}
    if teacher.kind == Teacher.Kind.OPENAI:
        url = teacher.base_url.rstrip("/") + "/chat/completions"
        return {**spec, "kind": "api", "path": url, "api_model": teacher.model_name, "api_key_env": teacher.api_key_env}
    path = teacher.local_path
    if not path.exists():
        raise ValidationError({"models": f"The model of teacher {teacher.name} is not at {path}."})
    return {**spec, "kind": "gguf" if path.suffix == ".gguf" else "hf", "path": str(path)}


def _training_spec(project: Project, training_run_id: int) -> dict:
    from training.models import TrainingRun

    run = TrainingRun.objects.filter(pk=training_run_id, dataset_version__project=project).first()
    if run is None:
        raise ValidationError({"models": f"Training run {training_run_id} does not exist in this project."})
    folder = Path(run.model_dir)  # "" unless the run succeeded
    if not run.model_dir or not (folder / "config.json").exists():
        raise ValidationError({"models": f"Training run {run.pk} has no exported student model yet."})
    label = run.name or f"training-run-{run.pk}"
    return {"label": label, "role": "student", "kind": "hf", "path": str(folder), "source": {"training_run_id": run.pk}}


def _resolve_model(project: Project, raw: dict, actor) -> dict:
    for key in ("teacher_id", "training_run_id"):
        if raw.get(key) is not None and not is_db_id(raw[key]):
            raise ValidationError({"models": f"{key} must be a whole number (an id)."})
    if raw.get("teacher_id"):
        spec = _teacher_spec(project, raw["teacher_id"])
    elif raw.get("training_run_id"):
        spec = _training_spec(project, raw["training_run_id"])
    elif raw.get("kind") in ("hf", "gguf"):
        path = _model_path(str(raw.get("path", "")), actor)
        spec = {"label": path.stem if raw["kind"] == "gguf" else path.name, "role": "student",
                "kind": raw["kind"], "path": str(path), "source": {"path": str(path)}}
    elif raw.get("kind") == "api":
        if not raw.get("path") or not raw.get("api_model"):
            raise ValidationError({"models": "An API model needs the endpoint URL (path) and api_model."})
        check_outbound_url(str(raw["path"]), field="models")
        if raw.get("api_key_env"):
            # A key and a URL chosen together would let the chooser send the key anywhere.
            check_operator(actor, "give an evaluated endpoint an API key (register it as a teacher)")
            check_key_env(str(raw["api_key_env"]))
        spec = {"label": raw["api_model"], "role": "student", "kind": "api", "path": raw["path"],
                "api_model": raw["api_model"], "api_key_env": raw.get("api_key_env", ""),
                "source": {"url": raw["path"]}}
    else:
        raise ValidationError(
            {"models": "Each model needs teacher_id, training_run_id, or kind (hf, gguf, api) and path."}
        )
    spec["label"] = str(raw.get("label") or spec["label"])[:100]
    spec["role"] = raw.get("role") or spec["role"]
    if spec["role"] not in ("teacher", "student"):
        raise ValidationError({"models": "A model's role is teacher or student."})
    return spec


def _resolve_models(project: Project, models: list[dict], actor) -> list[dict]:
    if not models:
        raise ValidationError({"models": "Choose at least one model."})
    if not all(isinstance(raw, dict) for raw in models):
        raise ValidationError({"models": "Each model is an object."})
    specs = [_resolve_model(project, raw, actor) for raw in models]
    labels = [s["label"] for s in specs]
    if len(set(labels)) != len(labels):
        raise ValidationError({"models": "Two models have the same label; give them distinct labels."})
    if sum(s["role"] == "teacher" for s in specs) > 1:
        raise ValidationError({"models": "A run compares against one teacher."})
    return specs


def _is_path_like(task: str) -> bool:
    return "/" in task or "\\" in task or task.startswith((".", "~"))


def _task_folder(task: str, actor) -> str | None:
    """The absolute folder of a task-folder entry, or None for an lm-eval task name.

    A task folder's YAML may import Python (``!function``), so curators pick one an operator
    registered (by name); only an operator may name a folder on the server directly.
    """
    resource = registered_resource(ServerResource.Kind.TASKS, task)
    if resource is not None:
        return str(resource.full_path.resolve())
    if not _is_path_like(task):
        return None
    if not is_operator(actor):
        names = list(ServerResource.objects.filter(kind=ServerResource.Kind.TASKS).values_list("name", flat=True))
        choice = f" Registered: {', '.join(names)}." if names else " None is registered yet."
        raise ValidationError({"tasks": f"Task folders are picked from those an operator registered.{choice}"})
    folder = _local_path(task)
    if not folder.is_dir():
        raise ValidationError({"tasks": f"No task folder at {folder}."})
    return str(folder)


def _clean_tasks(tasks: list[str], dataset_version: DatasetVersion | None, actor=None) -> list[str]:
    tasks = [t.strip() for t in (tasks or ([HELDOUT] if dataset_version else [])) if t and t.strip()]
    if not tasks:
        raise ValidationError({"tasks": "Choose at least one task (the held-out task needs a dataset version)."})
    if HELDOUT in tasks and (dataset_version is None or not dataset_version.heldout_count):
        raise ValidationError({"tasks": "The held-out task needs a dataset version with held-out rows."})
    # Folders are stored as absolute paths, names as names: the worker never guesses from its own cwd.
    tasks = [task if task == HELDOUT else (_task_folder(task, actor) or task) for task in tasks]
    return list(dict.fromkeys(tasks))


def evaluation_run_create(
    *, project: Project, created_by, models: list[dict], tasks: list[str] | None = None,
    dataset_version: DatasetVersion | None = None, options: dict | None = None, name: str = "", enqueue: bool = True,
    actor=None,
) -> EvaluationRun:
    """Validate, resolve the models to files or endpoints, and queue the run.

    ``actor`` is who asks (default: ``created_by``); only an operator may name server paths directly.
    """
    actor = created_by if actor is None else actor
    if dataset_version is not None and dataset_version.project_id != project.pk:
        raise ValidationError({"dataset_version": "That dataset version belongs to another project."})
    specs, options = _resolve_models(project, models, actor), _clean_options(options)
    tasks = _clean_tasks(tasks or [], dataset_version, actor)
    refs = _greedy_references(specs, options, tasks, dataset_version, created_by, enqueue)
    run = EvaluationRun.objects.create(
        project=project, created_by=created_by, dataset_version=dataset_version, name=name[:200],
        models_spec=specs, tasks=tasks, options=options,
    )
    # A run on greedy references waits for them: their job queues it when they are complete.
    if enqueue and (refs is None or refs.status == JobStatus.SUCCEEDED):
        jobs.job_enqueue(run)
    return run


def _greedy_references(specs, options, tasks, version, created_by, enqueue):
    if options["references"] != "teacher_greedy":
        return None
    from evaluation.references import reference_set_for

    teacher = next((s for s in specs if s["role"] == "teacher" and s.get("source", {}).get("teacher_id")), None)
    if HELDOUT not in tasks or teacher is None:
        raise ValidationError({"options": "Greedy references need the held-out task and a registered teacher."})
    refs = reference_set_for(dataset_version=version, teacher=Teacher.objects.get(pk=teacher["source"]["teacher_id"]),
                             max_new_tokens=options["max_gen_toks"], created_by=created_by, enqueue=enqueue)
    options["reference_set"] = refs.pk
    return refs


def training_run_evaluate(*, training_run, created_by, options: dict | None = None) -> EvaluationRun:
    """The admin's "evaluate against teacher": the run's teacher vs its student on its held-out split."""
    version = training_run.dataset_version
    if training_run.teacher_id is None:
        raise ValidationError(f"Training run {training_run.pk} has no teacher to compare against.")
    return evaluation_run_create(
        project=version.project, created_by=created_by, dataset_version=version, options=options,
        models=[{"teacher_id": training_run.teacher_id}, {"training_run_id": training_run.pk}],
        tasks=[HELDOUT], name=f"{training_run} vs teacher",
    )


def evaluation_run_cancel(*, run: EvaluationRun) -> EvaluationRun:
    """A queued (or lost) run is cancelled at once; a running one stops its current model's process."""
    return jobs.job_cancel(job=run)


def evaluation_run_resume(*, run: EvaluationRun, enqueue: bool = True) -> EvaluationRun:
    """Queue a failed or cancelled run again: models already scored keep their results."""
    return jobs.job_resume(job=run, enqueue=enqueue)


def evaluation_run_execute(*, run_id: int) -> str | None:
    """Claim a queued run, evaluate each model not yet scored in its own process, store each as it finishes.

    Returns the final status, or None when the run was not queued (already taken or cancelled). A model's
    process that was killed (out of memory...) sends the run back to the queue while attempts remain.
    """
    return jobs.job_run(
        EvaluationRun, run_id, _execute_attempt, select_related=("dataset_version", "project"),
        finish_fields=lambda status: {"progress": 1.0, "stage": "done"} if status == JobStatus.SUCCEEDED else {},
    )


def _execute_attempt(run: EvaluationRun) -> str:
    try:
        return _execute(run)
    except EvaluationCancelled:
        return JobStatus.CANCELLED
    except ChildDied as exc:
        raise jobs.JobLost(jobs.lost_reason(exc.returncode)) from exc
    except HarnessError as exc:
        raise jobs.JobFailed(str(exc)) from exc


def _execute(run: EvaluationRun) -> str:
    from curation.services.datasets import dataset_export

    folder = Path(settings.DATA_DIR) / "evaluation" / f"run-{run.pk}"
    jobs.job_beat(EvaluationRun, run.pk, artifact_dir=str(folder), stage="writing the held-out task")
    heldout = None
    if HELDOUT in run.tasks:
        path = folder / "heldout.jsonl"
        if run.options.get("reference_set"):
            from evaluation.models import ReferenceSet
            from evaluation.references import write_greedy_heldout

            write_greedy_heldout(ReferenceSet.objects.get(pk=run.options["reference_set"]), path)
        else:
            dataset_export(version=run.dataset_version, format="sft", split="heldout", out=path)
        heldout = HeldoutSpec(str(path), max_gen_toks=run.options.get("max_gen_toks", 256))
    names = [t for t in run.tasks if t != HELDOUT]
    opts = run.options
    configs = plan_runs(
        [ModelSpec(m["label"], m["kind"], m["path"], role=m["role"], api_model=m.get("api_model", ""))
         for m in run.models_spec],
        output_dir=str(folder / "models"),
        tasks=[t for t in names if not Path(t).is_absolute()],
        task_dirs=[t for t in names if Path(t).is_absolute()],
        heldout=heldout,
        options=EvalOptions(limit=opts.get("limit"), num_fewshot=opts.get("num_fewshot"),
                            apply_chat_template=opts.get("apply_chat_template", True),
                            batch_size=opts.get("batch_size", 8)),
        offline=not getattr(settings, "EVALUATION_ALLOW_HUB", False),
    )
    for index, (config, spec) in enumerate(zip(configs, run.models_spec)):
        if spec["label"] in run.results:  # scored by an earlier attempt: results and samples are stored
            continue
        progress = _Progress(run.pk, index, len(configs), spec["label"])
        result = run_model_subprocess(config, on_progress=progress.report, should_cancel=progress.should_cancel,
                                      env=_model_env(spec))
        _store_result(run.pk, result)
    if heldout is not None and run.options.get("fidelity", True) and not run.speed:  # not done by an earlier attempt
        _measure_fidelity(run, heldout.data_file, folder / "fidelity")
    return JobStatus.SUCCEEDED


def _measure_fidelity(run: EvaluationRun, data_file: str, folder: Path) -> None:
    """Teacher-forced fidelity of each local student and fixed-length speed of every local model, in one child.

    Forward passes only: seconds per model. Needs a local teacher (an endpoint returns no full distributions).
    """
    from evaluation.harness.fidelity import FidelityRunConfig
    from evaluation.harness.process import run_fidelity_subprocess

    local = [m for m in run.models_spec if m["kind"] in ("hf", "gguf")]
    teacher = next((m for m in local if m["role"] == "teacher"), None)
    students = [m for m in local if m["role"] == "student"]
    if teacher is None or not students:
        return
    spec = lambda m: ModelSpec(m["label"], m["kind"], m["path"], role=m["role"])  # noqa: E731
    config = FidelityRunConfig(
        teacher=spec(teacher), students=[spec(m) for m in students], data_file=data_file, output_dir=str(folder),
        batch_size=run.options.get("batch_size", 8),
        speed_batch_sizes=sorted({1, run.options.get("speed_batch_size", 8)}),
        speed_new_tokens=run.options.get("speed_new_tokens", 64),
    )
    progress = _Progress(run.pk, len(run.models_spec), len(run.models_spec) + 1, "fidelity and speed")
    result = run_fidelity_subprocess(config, on_progress=progress.report, should_cancel=progress.should_cancel)
    fidelity = {label: {"summary": m["fidelity"], "per_example": m["per_example"]}
                for label, m in result["models"].items() if "fidelity" in m}
    speed = {label: m["speed"] for label, m in result["models"].items()}
    jobs.job_beat(EvaluationRun, run.pk, fidelity=fidelity, speed=speed)


def _model_env(spec: dict) -> dict[str, str]:
    """An endpoint's key travels to its child only, by the variable name the teacher names."""
    if spec.get("kind") == "api":
        try:  # again at run time: DNS may answer differently now than when the run was created
            check_outbound_url(spec["path"], field="models")
        except ValidationError as error:
            raise HarnessError(f"{spec['label']}: {' '.join(error.messages)}") from None
    name = spec.get("api_key_env")
    if not name:
        return {}
    if not key_env_allowed(name):
        raise HarnessError(f"{spec['label']}: the variable {name} is not one API keys may come from")
    if not os.environ.get(name):
        raise HarnessError(f"environment variable {name} is not set; it must hold the API key of {spec['label']}")
    return {"OPENAI_API_KEY": os.environ[name]}


def _store_result(run_id: int, result: ModelResult) -> None:
    summary = {
        "role": result.role, "n_samples": result.n_samples, "notes": result.notes,
        "lm_eval_command": result.lm_eval_command, "wall_seconds": result.wall_seconds,
        "metrics": {t: {k: vars(v) for k, v in m.items()} for t, m in result.metrics.items()},
    }
    samples = []
    for task, path in result.samples_files.items():
        for r in json.loads(Path(path).read_text()):
            item = str(r.get("item_id") or "")
            samples.append(EvaluationSample(
                run_id=run_id, model_label=result.label, task=task, doc_id=r["doc_id"],
                prompt_id=int(item) if item.isdigit() else None, prompt=r["prompt"], target=r["target"],
                response=r["response"] or "", metrics=r["metrics"],
            ))
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().get(pk=run_id)
        run.results[result.label] = summary
        run.measurements[result.label] = vars(result.measurements)
        run.save(update_fields=["results", "measurements"])
        EvaluationSample.objects.bulk_create(samples, batch_size=500)


class _Progress:
    """Progress from the harness, written to the run row from the polling thread only.

    The harness calls ``report`` from its output-reading thread; database work stays in
    ``should_cancel``, which it calls from the thread running the service, every poll.
    """

    def __init__(self, run_id: int, index: int, count: int, label: str) -> None:
        self.run_id, self.index, self.count, self.label = run_id, index, count, label
        self.latest: tuple[float, str] = (0.0, "starting")
        self.written_at = 0.0
        self.cancelled = False

    def report(self, fraction: float, message: str) -> None:
        self.latest = (fraction, message)

    def should_cancel(self) -> bool:
        if self.cancelled or time.monotonic() - self.written_at < 1.0:
            return self.cancelled
        fraction, message = self.latest
        values = {"progress": (self.index + fraction) / self.count, "stage": f"{self.label}: {message}"[:200]}
        # One UPDATE writes progress and reads the cancel flag (False: cancel asked for, or the run not ours).
        self.cancelled = not jobs.job_beat(EvaluationRun, self.run_id, **values)
        self.written_at = time.monotonic()
        return self.cancelled


def evaluation_items_send_back(*, run: EvaluationRun, doc_ids: list[int], actor, student_label: str = "") -> int:
    """Send held-out items back to the review queue, flagged with the run that found them."""
    from curation.services.bulk import prompts_requeue

    if run.status != JobStatus.SUCCEEDED:
        raise ValidationError("Only a finished evaluation run can send items back.")
    rows = EvaluationSample.objects.filter(run=run, doc_id__in=doc_ids, prompt_id__isnull=False)
    prompt_ids = sorted(set(rows.values_list("prompt_id", flat=True)))
    if not prompt_ids:
        raise ValidationError("Select held-out items that come from curation.")
    who = f"{student_label} scored below the teacher" if student_label else "flagged by a curator"
    with transaction.atomic():
        count = prompts_requeue(project=run.project, prompt_ids=prompt_ids, actor=actor, flag_kind=REGRESSION_FLAG,
                                flag_detail=f"evaluation run #{run.pk} ({run}): {who}")
        rows.update(sent_back_at=timezone.now())
    return count
