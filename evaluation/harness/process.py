"""Run each model in its own child process and follow its progress.

lm-eval keeps memory after a run, so a long-lived worker must never load models
itself. The child is ``python -m evaluation.harness model CONFIG``; it prints
progress as marked JSON lines on stdout, writes ``result.json`` or ``error.json``,
and everything else it prints goes to ``log.txt`` next to them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import ChildDied, EvaluationCancelled, HarnessError, ModelResult, ModelRunConfig, TaskUnreachable

PROGRESS_MARK = "@@distillery-progress "
PROJECT_ROOT = Path(__file__).resolve().parents[2]
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

Progress = Callable[[float, str], None]
ShouldCancel = Callable[[], bool]


def child_env(offline: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    if offline:
        env.update(OFFLINE_ENV)
    env.update(extra or {})
    return env


def run_model_subprocess(
    config: ModelRunConfig,
    *,
    on_progress: Progress | None = None,
    should_cancel: ShouldCancel | None = None,
    env: dict[str, str] | None = None,
    poll_seconds: float = 0.5,
) -> ModelResult:
    """Evaluate one model in a child process; raise ``HarnessError`` with its message."""
    out = run_child("model", config.to_json(), Path(config.output_dir), config.model.label, offline=config.offline,
                    hide_log=config.model.is_api,
                    on_progress=on_progress, should_cancel=should_cancel, env=env, poll_seconds=poll_seconds)
    return ModelResult.load(out / "result.json")


def run_fidelity_subprocess(
    config: Any,
    *,
    on_progress: Progress | None = None,
    should_cancel: ShouldCancel | None = None,
    poll_seconds: float = 0.5,
) -> dict:
    """Teacher-forced fidelity and fixed-length speed (``fidelity.FidelityRunConfig``) in a child process."""
    out = run_child("fidelity", config.to_json(), Path(config.output_dir), "fidelity", offline=config.offline,
                    on_progress=on_progress, should_cancel=should_cancel, poll_seconds=poll_seconds)
    return json.loads((out / "result.json").read_text())


def run_child(
    command: str,
    config_text: str,
    out: Path,
    label: str,
    *,
    offline: bool,
    hide_log: bool = False,
    on_progress: Progress | None = None,
    should_cancel: ShouldCancel | None = None,
    env: dict[str, str] | None = None,
    poll_seconds: float = 0.5,
) -> Path:
    """Run ``python -m evaluation.harness COMMAND CONFIG`` and return its folder once result.json is there."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("result.json", "error.json"):
        (out / stale).unlink(missing_ok=True)
    config_path = out / "config.json"
    config_path.write_text(config_text)
    with (out / "log.txt").open("a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "evaluation.harness", command, str(config_path)],
            cwd=PROJECT_ROOT,
            env=child_env(offline, env),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # so a cancel can stop the whole process group
        )
        reader = threading.Thread(target=_follow, args=(proc, log, on_progress), daemon=True)
        reader.start()
        cancelled = _wait(proc, should_cancel, poll_seconds)
        reader.join(timeout=5)
    if cancelled:
        raise EvaluationCancelled(f"evaluation of {label} was cancelled")
    if (out / "result.json").exists() and proc.returncode == 0:
        return out
    error = out / "error.json"
    if not error.exists() and proc.returncode is not None and (proc.returncode < 0 or proc.returncode == 137):
        raise ChildDied(_failure_message(label, out, proc.returncode, hide_log), proc.returncode)
    kind = json.loads(error.read_text()).get("type") if error.exists() else ""
    raise (TaskUnreachable if kind == "TaskUnreachable" else HarnessError)(
        _failure_message(label, out, proc.returncode, hide_log)
    )


def _follow(proc: subprocess.Popen, log, on_progress: Progress | None) -> None:
    # This thread must drain the pipe to the end whatever happens, or a full pipe would stall the child.
    for line in proc.stdout:
        if not line.startswith(PROGRESS_MARK):
            log.write(line)
        elif on_progress:
            try:
                event = json.loads(line[len(PROGRESS_MARK) :])
                on_progress(event["fraction"], event["message"])
            except Exception as exc:  # noqa: BLE001 - a progress hiccup must not stop the evaluation
                log.write(f"progress callback failed: {exc!r}\n")


def _wait(proc: subprocess.Popen, should_cancel: ShouldCancel | None, poll_seconds: float) -> bool:
    while True:
        try:
            proc.wait(timeout=poll_seconds)
            return False
        except subprocess.TimeoutExpired:
            if should_cancel and should_cancel():
                _stop(proc)
                return True


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _failure_message(label: str, out: Path, returncode: int | None, hide_log: bool = False) -> str:
    error = out / "error.json"
    if error.exists():
        return json.loads(error.read_text())["message"]
    if returncode is not None and returncode < 0:
        signame = signal.Signals(-returncode).name
        hint = " (out of memory?)" if signame == "SIGKILL" else ""
        return f"evaluation of {label} was killed by {signame}{hint}; see {out / 'log.txt'}"
    if hide_log:  # the log may quote an endpoint's answers; they stay in the log
        return f"evaluation of {label} failed (exit {returncode}); details in log.txt"
    tail = (out / "log.txt").read_text(errors="replace").strip().splitlines()[-5:]
    return f"evaluation of {label} failed (exit {returncode}): " + " | ".join(tail)


def evaluate_models(
    configs: list[ModelRunConfig],
    *,
    on_progress: Callable[[int, float, str], None] | None = None,
    should_cancel: ShouldCancel | None = None,
    env: dict[str, str] | None = None,
) -> list[ModelResult]:
    """Evaluate several models one after another, each in its own process."""
    results = []
    for i, config in enumerate(configs):
        report = (lambda f, m, i=i: on_progress(i, f, m)) if on_progress else None
        results.append(run_model_subprocess(config, on_progress=report, should_cancel=should_cancel, env=env))
    return results
