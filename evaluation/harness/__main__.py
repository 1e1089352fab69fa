"""Command line: ``python -m evaluation.harness {run,model,heldout,check} ...``.

``run`` evaluates several models (each in its own process) and prints a table;
``model`` is the child side of that, one model from a JSON config; ``heldout``
writes the task YAML for a held-out file; ``check`` tells whether tasks can run here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from .config import EvalOptions, HarnessError, HeldoutSpec, ModelRunConfig, parse_model, plan_runs
from .process import OFFLINE_ENV, PROGRESS_MARK, evaluate_models


def _emit(fraction: float, message: str) -> None:
    print(PROGRESS_MARK + json.dumps({"fraction": round(fraction, 4), "message": message}), flush=True)


def _exit_with_parent() -> None:
    """Stop when the process that started us is gone (a killed worker), instead of running on orphaned."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def cmd_model(args: argparse.Namespace) -> int:
    from .runner import evaluate_model

    _exit_with_parent()
    config = ModelRunConfig.from_dict(json.loads(Path(args.config).read_text()))
    error = Path(config.output_dir) / "error.json"
    if config.model.is_api:
        _no_redirects()
    try:
        evaluate_model(config, on_progress=_emit)
    except HarnessError as exc:
        error.write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the parent shows this message; the traceback goes to the log
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        if config.model.is_api:  # lm-eval's errors may quote what the endpoint answered: keep that in the log
            message = f"{type(exc).__name__} while calling {config.model.label}'s endpoint (details in log.txt)"
        error.write_text(json.dumps({"type": type(exc).__name__, "message": message}))
        return 1
    return 0


def _no_redirects() -> None:
    """lm-eval's API models post with requests, which follows redirects: a URL that passed the address
    check could hand the request (and its key) on to an internal one. With a limit of 0, the first
    redirect fails the run instead."""
    import requests.sessions

    requests.sessions.DEFAULT_REDIRECT_LIMIT = 0


def cmd_fidelity(args: argparse.Namespace) -> int:
    from curation.teachers.threads import apply_model_threads

    from .fidelity import FidelityRunConfig, run_fidelity

    _exit_with_parent()
    apply_model_threads()  # the same thread rule as generation, training and the lm-eval child
    config = FidelityRunConfig.from_dict(json.loads(Path(args.config).read_text()))
    error = Path(config.output_dir) / "error.json"
    try:
        run_fidelity(config, on_progress=_emit)
    except Exception as exc:  # the parent shows this message; the traceback goes to the log
        traceback.print_exc()
        error.write_text(json.dumps({"type": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}"}))
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    models = [parse_model(m) for m in args.model]
    for model in models:
        if model.kind != "api":
            model.path = str(Path(model.path).resolve())
    configs = plan_runs(
        models,
        output_dir=args.output,
        tasks=args.tasks,
        task_dirs=args.task_dir,
        heldout=HeldoutSpec(args.heldout, max_gen_toks=args.max_gen_toks) if args.heldout else None,
        options=EvalOptions(
            limit=args.limit,
            num_fewshot=args.num_fewshot,
            apply_chat_template=not args.no_chat_template,
            batch_size=args.batch_size,
        ),
        offline=not args.online,
    )
    show = lambda i, f, m: print(f"[{configs[i].model.label}] {f:5.0%} {m}", file=sys.stderr)  # noqa: E731
    try:
        results = evaluate_models(configs, on_progress=show)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for result in results:
        m = result.measurements
        print(f"\n{result.label} ({result.role}): {m.parameter_count} parameters, "
              f"{m.size_on_disk_bytes} bytes, {m.tokens_per_second} tokens/s, {result.wall_seconds} s")
        for task, metrics in result.metrics.items():
            for name, metric in metrics.items():
                print(f"  {task:24} {name:20} {metric.value!s:>24} ± {metric.stderr}")
        for note in result.notes:
            print(f"  note: {note}")
    return 0


def cmd_heldout(args: argparse.Namespace) -> int:
    from .heldout import write_heldout_tasks

    docs = write_heldout_tasks(args.source, args.folder, chat_template=not args.no_chat_template,
                               max_gen_toks=args.max_gen_toks)
    print(f"wrote {len(docs)} items and the heldout_gen / heldout_ppl tasks to {args.folder}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    if not args.online:
        os.environ.update(OFFLINE_ENV)  # before datasets is imported
    from lm_eval.tasks import TaskManager

    from .tasks import check_reachable

    try:
        check_reachable(TaskManager(include_path=args.include_path), args.tasks, offline=not args.online)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("all tasks can run here")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation.harness")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate models, each in its own process")
    run.add_argument("--model", action="append", required=True,
                     help="[LABEL=]hf:FOLDER | [LABEL=]gguf:FILE | [LABEL=]api:URL#MODEL (LABEL teacher: the teacher)")
    run.add_argument("--heldout", help="held-out JSONL in the curation sft format")
    run.add_argument("--tasks", nargs="*", default=[], help="built-in task names or YAML files")
    run.add_argument("--task-dir", action="append", default=[], help="a folder of task YAML")
    run.add_argument("--output", required=True)
    run.add_argument("--limit", type=float)
    run.add_argument("--num-fewshot", type=int)
    run.add_argument("--batch-size", type=int, default=8)
    run.add_argument("--max-gen-toks", type=int, default=256)
    run.add_argument("--no-chat-template", action="store_true")
    run.add_argument("--online", action="store_true", help="allow the Hugging Face hub")
    run.set_defaults(func=cmd_run)
    model = sub.add_parser("model", help="evaluate one model in this process (child side)")
    model.add_argument("config")
    model.set_defaults(func=cmd_model)
    fidelity = sub.add_parser("fidelity", help="teacher-forced fidelity and fixed-length speed (child side)")
    fidelity.add_argument("config")
    fidelity.set_defaults(func=cmd_fidelity)
    held = sub.add_parser("heldout", help="write held-out task YAML")
    held.add_argument("source")
    held.add_argument("folder")
    held.add_argument("--max-gen-toks", type=int, default=256)
    held.add_argument("--no-chat-template", action="store_true")
    held.set_defaults(func=cmd_heldout)
    check = sub.add_parser("check", help="can these tasks' data be read here?")
    check.add_argument("tasks", nargs="+")
    check.add_argument("--include-path")
    check.add_argument("--online", action="store_true")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
