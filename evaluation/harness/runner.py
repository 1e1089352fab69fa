"""Evaluate one model in this process with ``lm_eval.simple_evaluate``.

The model is built exactly as the ``lm_eval`` CLI builds it (same registry call,
same arguments, seeds and task manager), so stored numbers equal a bare CLI run
with the command recorded in the result. Run it in its own process
(``process.run_model_subprocess``): lm-eval does not give memory back.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import HELDOUT_GEN_TASK, HELDOUT_TASKS, HarnessError, MetricResult, ModelResult, ModelRunConfig, ModelSpec
from .heldout import write_heldout_tasks
from .measure import GenerationMeter, parameter_count, size_on_disk
from .samples import normalize_samples
from .tasks import GENERATE, check_reachable, copy_task_folders, folder_task_names, output_types

Progress = Callable[[float, str], None]
# The CLI's default seeds (random, numpy, torch, fewshot).
CLI_SEEDS = (0, 1234, 1234, 1234)
API_NOTE = (
    "{label} is an API model: only generate_until tasks were run. Chat-completions endpoints "
    "return generated text, not the log-probabilities of a given continuation, so "
    "loglikelihood tasks ({skipped}) cannot be scored."
)


def lm_eval_model(spec: ModelSpec) -> tuple[str, dict[str, Any]]:
    """The lm-eval model name and model_args for a spec."""
    if spec.kind == "hf":
        return "hf", {"pretrained": spec.path}
    if spec.kind == "gguf":
        path = Path(spec.path)
        return "hf", {"pretrained": str(path.parent), "gguf_file": path.name}
    if spec.kind == "api":
        name = "openai-chat-completions" if spec.api_flavour == "openai" else "local-chat-completions"
        return name, {"model": spec.api_model, "base_url": spec.path, "num_concurrent": 1, "max_retries": 2}
    raise HarnessError(f"unknown model kind {spec.kind!r}")


def uses_chat_template(config: ModelRunConfig) -> bool:
    # Chat-completions endpoints take messages, never a flat prompt.
    return config.model.is_api or config.options.apply_chat_template


def lm_eval_command(config: ModelRunConfig, tasks: list[str], include_path: str | None, out: str) -> list[str]:
    """The bare ``lm_eval`` CLI command that reproduces this model's numbers."""
    name, args = lm_eval_model(config.model)
    opts = config.options
    command = ["lm_eval", "run", "--model", name, "--model_args", ",".join(f"{k}={v}" for k, v in args.items())]
    command += ["--tasks", ",".join(tasks), "--batch_size", str(opts.batch_size)]
    if include_path:
        command += ["--include_path", include_path]
    if opts.limit is not None:
        command += ["--limit", str(opts.limit)]
    if opts.num_fewshot is not None:
        command += ["--num_fewshot", str(opts.num_fewshot)]
    if uses_chat_template(config):
        command += ["--apply_chat_template"]
    return command + ["--log_samples", "--output_path", out]


def prepare_tasks(config: ModelRunConfig) -> tuple[list[str], str | None]:
    """Write the held-out tasks and copy user folders under one include folder."""
    root = Path(config.output_dir) / "tasks"
    names: list[str] = []
    if config.heldout:
        write_heldout_tasks(
            config.heldout.data_file,
            root / "heldout",
            chat_template=uses_chat_template(config),
            max_gen_toks=config.heldout.max_gen_toks,
        )
        names += list(HELDOUT_TASKS)
    for folder in copy_task_folders(config.task_dirs, root):
        names += folder_task_names(folder)
    names += [t for t in config.tasks if t not in names]
    if not names:
        raise HarnessError("no task to run: give a held-out file, task names or a task folder")
    return names, (str(root.resolve()) if root.exists() else None)


def _api_tasks(manager: Any, config: ModelRunConfig, names: list[str], notes: list[str]) -> list[str]:
    kinds = output_types(manager, names)
    keep = [n for n in names if kinds[n] == {GENERATE}]
    skipped = [n for n in names if n not in keep]
    if skipped:
        notes.append(API_NOTE.format(label=config.model.label, skipped=", ".join(skipped)))
    if not keep:
        raise HarnessError(f"{config.model.label} is an API model and none of the tasks is a generate_until task")
    return keep


def _ticker(on_progress: Progress, kinds: int) -> Callable[[str, int, int], None]:
    done: dict[str, int] = {}

    def tick(kind: str, rows: int, total: int) -> None:
        done[kind] = done.get(kind, 0) + rows
        finished = sum(1 for k in done if k != kind)  # request types run one after another
        share = min(1.0, done[kind] / total) if total else 1.0
        fraction = 0.15 + 0.8 * min(1.0, (finished + share) / max(kinds, 1))
        on_progress(fraction, f"{kind}: {min(done[kind], total)}/{total} requests")

    return tick


def evaluate_model(config: ModelRunConfig, on_progress: Progress | None = None) -> ModelResult:
    on_progress = on_progress or (lambda fraction, message: None)
    started = time.perf_counter()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # as the CLI does
    from curation.teachers.threads import apply_model_threads

    apply_model_threads()  # the same thread rule as generation and training
    on_progress(0.01, "indexing tasks")
    names, include_path = prepare_tasks(config)

    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    model_name, model_args = lm_eval_model(config.model)
    # Indexing lm-eval's ~15k built-in task files takes seconds per process; a run of held-out tasks
    # alone does not need them (the numbers do not depend on the index).
    builtin = bool(config.tasks or config.task_dirs)
    manager = TaskManager(include_path=include_path, include_defaults=builtin, metadata=dict(model_args))
    notes: list[str] = []
    if config.model.is_api:
        names = _api_tasks(manager, config, names, notes)
    check_reachable(manager, names, offline=config.offline)
    on_progress(0.05, f"loading {config.model.label}")
    opts = config.options
    lm = get_model(model_name).create_from_arg_obj(
        model_args, {"batch_size": opts.batch_size, "max_batch_size": None, "device": _device()}
    )
    # multiple_choice tasks are loglikelihood requests to the model.
    kinds = {"loglikelihood" if k == "multiple_choice" else k
             for ks in output_types(manager, names).values() for k in ks}
    meter = GenerationMeter(lm, _ticker(on_progress, len(kinds)))
    meter.install()
    on_progress(0.15, "evaluating")
    chat = uses_chat_template(config)
    results = simple_evaluate(
        model=lm,
        tasks=names,
        num_fewshot=opts.num_fewshot,
        batch_size=opts.batch_size,
        limit=None if opts.limit is None else float(opts.limit),
        log_samples=True,
        apply_chat_template=chat,
        fewshot_as_multiturn=True if chat else None,
        task_manager=manager,
        random_seed=CLI_SEEDS[0],
        numpy_random_seed=CLI_SEEDS[1],
        torch_random_seed=CLI_SEEDS[2],
        fewshot_random_seed=CLI_SEEDS[3],
        metadata=dict(model_args),
    )
    on_progress(0.97, "writing results")
    result = _write_outputs(config, results, out, meter, lm, notes)
    result.lm_eval_command = lm_eval_command(config, names, include_path, str(out / "lm_eval_cli"))
    result.wall_seconds = round(time.perf_counter() - started, 3)
    (out / "result.json").write_text(result.to_json())
    on_progress(1.0, "done")
    return result


def _device() -> str:
    # The CLI asks for "cuda:0" and HFLM falls back to the CPU when there is none; an
    # unset device would make HFLM insist on CUDA.
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _metrics(results: dict) -> dict[str, dict[str, MetricResult]]:
    table: dict[str, dict[str, MetricResult]] = {}
    for task, row in results["results"].items():
        better = results.get("higher_is_better", {}).get(task, {})
        for key, value in row.items():
            if "," not in key or "_stderr," in key:
                continue
            metric, filt = key.split(",", 1)
            name = metric if filt == "none" else key
            stderr = row.get(f"{metric}_stderr,{filt}")
            table.setdefault(task, {})[name] = MetricResult(
                value=_float(value), stderr=_float(stderr), higher_is_better=better.get(metric)
            )
    return table


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # lm-eval writes "N/A" where it has no stderr


def _write_outputs(config, results, out: Path, meter, lm, notes) -> ModelResult:
    from lm_eval.utils import handle_non_serializable

    samples = results.pop("samples", {})
    (out / "lm_eval_results.json").write_text(
        json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False)
    )
    files = {}
    for task, task_samples in samples.items():
        path = out / f"samples_{task}.json"
        records = normalize_samples(json.loads(json.dumps(task_samples, default=handle_non_serializable)))
        path.write_text(json.dumps(records, indent=1, ensure_ascii=False))
        files[task] = str(path)
    # Chat-completions endpoints are sent one request at a time whatever the option says.
    batch = 1 if config.model.is_api else config.options.batch_size
    measurements = meter.measurements(HELDOUT_GEN_TASK, batch)
    measurements.parameter_count = parameter_count(lm)
    measurements.size_on_disk_bytes = size_on_disk(config.model)
    return ModelResult(
        label=config.model.label,
        role=config.model.role,
        metrics=_metrics(results),
        n_samples={t: int(n.get("effective", 0)) for t, n in results.get("n-samples", {}).items()},
        measurements=measurements,
        notes=notes,
        output_dir=str(out),
        samples_files=files,
    )
