"""Reads for training runs: what a user may see, which teachers can train, whether a run lost its worker."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from curation.models import DatasetVersion, JobStatus, Membership, Project, Teacher
from curation.selectors.access import access_in_project, projects_visible_to
from curation.selectors.generation import teachers_for_project
from training.models import LogitCache, TrainingRun

def runs_dir() -> Path:
    return Path(settings.DATA_DIR) / "training"


def training_runs_visible_to(user, project: Project | None = None) -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.filter(dataset_version__project__in=projects_visible_to(user))
    if project is not None:
        runs = runs.filter(dataset_version__project=project)
    return runs.select_related("dataset_version__project", "teacher", "created_by")


def access_training_run(user, *, pk: int, role: str = Membership.Role.ANNOTATOR) -> TrainingRun:
    """The run if the user may act on it with `role`; 404 for outsiders, 403 for too low a role."""
    runs = TrainingRun.objects.select_related("dataset_version__project", "teacher", "created_by")
    return access_in_project(user, runs, pk=pk, project_of=lambda run: run.dataset_version.project, role=role,
                             what="training run")


def access_dataset_version(user, *, pk: int, role: str = Membership.Role.CURATOR) -> DatasetVersion:
    versions = DatasetVersion.objects.select_related("project")
    return access_in_project(user, versions, pk=pk, project_of=lambda version: version.project, role=role,
                             what="dataset version")


def logit_caches_visible_to(user) -> QuerySet[LogitCache]:
    return LogitCache.objects.filter(dataset_version__project__in=projects_visible_to(user)).select_related(
        "dataset_version__project", "teacher").order_by("-id")


def access_logit_cache(user, *, pk: int, role: str = Membership.Role.ANNOTATOR) -> LogitCache:
    caches = LogitCache.objects.select_related("dataset_version__project", "teacher")
    return access_in_project(user, caches, pk=pk, project_of=lambda cache: cache.dataset_version.project, role=role,
                             what="logit cache")


def default_teacher(project: Project) -> Teacher | None:
    """The project's first local teacher saved as a model folder (the one training and caching default to)."""
    return next(iter(trainable_teachers(project)), None)


def teacher_folder(teacher: Teacher) -> Path | None:
    """The teacher as a local Hugging Face folder, or None (an API teacher or a bare GGUF cannot be distilled)."""
    if teacher.kind != Teacher.Kind.LOCAL or teacher.gguf_file or teacher.model_path.endswith(".gguf"):
        return None
    return teacher.local_path


def trainable_teachers(project: Project) -> list[Teacher]:
    """Local teachers saved as model folders: the ones a student can be derived from or distilled against."""
    return [t for t in teachers_for_project(project) if teacher_folder(t) is not None]


def cacheable_teachers(project: Project) -> list[Teacher]:
    """Teachers whose logits can be cached: local model folders, and API teachers that name their tokenizer
    (the server scores prompts; its answers are mapped to that tokenizer's ids)."""
    return [t for t in teachers_for_project(project) if teacher_folder(t) is not None
            or (t.kind == Teacher.Kind.OPENAI and (t.default_params or {}).get("tokenizer"))]


def model_layers(folder: Path) -> int | None:
    try:
        return int(json.loads((folder / "config.json").read_text())["num_hidden_layers"])
    except (OSError, ValueError, KeyError):
        return None
