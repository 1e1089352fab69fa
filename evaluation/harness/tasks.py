"""Which tasks a run asks for, what they need, and whether their data can be read.

Built-in lm-eval tasks point at datasets on the Hugging Face hub. Offline, lm-eval
only notices when it builds the task, and one failing task fails the whole run, so
every requested task is checked up front and the run fails fast with a message that
names the task.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path
from typing import Any

from .config import HarnessError, TaskUnreachable

# datasets' packaged builders read local files named in data_files.
LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "webdataset", "imagefolder"}
GENERATE = "generate_until"


def copy_task_folders(folders: list[str], into: Path) -> list[Path]:
    """Copy user task folders under one include folder.

    The bare CLI takes a single ``--include_path``; keeping every task of a model
    run under one folder lets the recorded command reproduce the run exactly.
    """
    copies = []
    for i, folder in enumerate(folders):
        source = Path(folder)
        if not source.is_dir():
            raise HarnessError(f"task folder {folder} does not exist")
        target = into / f"user_{i}_{source.name}"
        shutil.copytree(source, target, dirs_exist_ok=True)
        copies.append(target)
    return copies


def folder_task_names(folder: Path) -> list[str]:
    """Top-level tasks of a folder: its groups, and tasks that no group includes."""
    from lm_eval.tasks._index import Kind, TaskIndex

    index = TaskIndex.build([folder])
    grouped = {
        child if isinstance(child, str) else child.get("task")
        for entry in index.values()
        if entry.kind is Kind.GROUP
        for child in (entry.cfg or {}).get("task", [])
    }
    names = [
        name
        for name, entry in index.items()
        if entry.kind is Kind.GROUP or (entry.kind in (Kind.TASK, Kind.PY_TASK) and name not in grouped)
    ]
    if not names:
        raise HarnessError(f"task folder {folder} defines no lm-eval task")
    return sorted(names)


def leaf_configs(manager: Any, name: str) -> list[dict]:
    """Raw configs of the leaf tasks behind a task, group, tag or YAML path."""
    from lm_eval.tasks._index import Kind, TaskIndex

    entry = manager.task_index.get(name)
    if entry is None and Path(name).is_file():
        entry = TaskIndex.entry_from_path(Path(name))
    if entry is None:
        raise HarnessError(f"Unknown task '{name}': not an lm-eval task, group or tag, nor a YAML file")
    if entry.kind is Kind.TAG:
        return [cfg for member in sorted(entry.tags) for cfg in leaf_configs(manager, member)]
    if entry.kind is Kind.GROUP:
        configs = []
        for child in (entry.cfg or {}).get("task", []):
            if isinstance(child, str):
                configs += leaf_configs(manager, child)
            elif child.get("task") in manager.task_index:
                configs += [{**cfg, **child} for cfg in leaf_configs(manager, child["task"])]
            else:
                configs.append(child)
        return configs
    if entry.kind is Kind.PY_TASK:
        return [_python_task_config(entry)]
    return [{"task": name, **(entry.cfg or {})}]


def _python_task_config(entry: Any) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    task_class = load_yaml(entry.yaml_path, resolve_func=True).get("class")
    return {
        "task": entry.name,
        "dataset_path": getattr(task_class, "DATASET_PATH", None),
        "dataset_name": getattr(task_class, "DATASET_NAME", None),
        "output_type": getattr(task_class, "OUTPUT_TYPE", None) or GENERATE,
    }


def output_types(manager: Any, names: list[str]) -> dict[str, set[str]]:
    return {
        name: {cfg.get("output_type") or GENERATE for cfg in leaf_configs(manager, name)}
        for name in names
    }


def check_reachable(manager: Any, names: list[str], *, offline: bool) -> None:
    """Raise ``TaskUnreachable`` for the first task whose data cannot be read."""
    for name in names:
        for cfg in leaf_configs(manager, name):
            problem = _dataset_problem(cfg, offline=offline)
            if problem:
                leaf = cfg.get("task") or name
                via = "" if leaf == name else f" (part of '{name}')"
                raise TaskUnreachable(
                    f"Task '{leaf}'{via} cannot run here: {problem}. It needs network access to the "
                    "Hugging Face hub or a local copy of its data (a datasets cache under HF_HOME, "
                    "or a task YAML that points at local files)."
                )


def _dataset_problem(cfg: dict, *, offline: bool) -> str | None:
    path = cfg.get("dataset_path")
    if not path or cfg.get("custom_dataset"):
        return None
    kwargs = dict(cfg.get("dataset_kwargs") or {})
    if path in LOCAL_BUILDERS or Path(path).exists():
        return _data_files_problem(kwargs.get("data_files"), offline=offline)
    import datasets

    try:
        # Reads metadata only: the local cache when offline, the hub otherwise.
        datasets.load_dataset_builder(path, cfg.get("dataset_name"), **kwargs)
    except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ValueError...
        where = "the hub is unreachable (offline mode)" if offline else f"loading it failed ({exc})"
        name = f" ({cfg['dataset_name']})" if cfg.get("dataset_name") else ""
        return f"its dataset '{path}'{name} is not on this machine and {where}"
    return None


def _data_files_problem(data_files: Any, *, offline: bool) -> str | None:
    if isinstance(data_files, dict):
        files = [f for value in data_files.values() for f in ([value] if isinstance(value, str) else value)]
    elif isinstance(data_files, str):
        files = [data_files]
    else:
        files = list(data_files or [])
    for f in files:
        if "://" in f:
            if offline:
                return f"its data file {f} is remote and the network is off (offline mode)"
        elif not glob.glob(f):
            return f"its data file {f} does not exist"
    return None
