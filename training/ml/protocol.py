"""The files through which a launcher and `python -m training.ml` talk, in the run's output_dir."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

PROGRESS_FILE = "progress.jsonl"  # one JSON event per line, written by the main process only
CANCEL_FILE = "CANCEL"  # created by the launcher: stop at the next step, keep a checkpoint
RESULT_FILE = "result.json"  # the TrainResult, at the end
ERROR_FILE = "error.txt"  # the traceback of a failure
REPORT_FILE = "report.json"
DIE_WITH_PARENT_ENV = "DISTILLERY_DIE_WITH_PARENT"


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere).

    A launcher killed with kill -9 (or by the OOM killer) must not leave its training running on: a resumed
    attempt would then write the same folder from two processes.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def die_with_parent_if_asked() -> None:
    if os.environ.get(DIE_WITH_PARENT_ENV) == "1":
        die_with_parent()
        if os.getppid() == 1:  # the parent died before the request took effect
            os._exit(1)


def complete_checkpoints(folder: Path | str) -> list[tuple[int, Path]]:
    """(step, folder) of the finished checkpoint-N folders under `folder`, newest first.

    The Trainer writes trainer_state.json last, so a folder without a readable one was cut short (its process
    was killed while saving) and must not be resumed from.
    """
    found = []
    for path in Path(folder).glob("checkpoint-*"):
        step = path.name.rpartition("-")[2]
        if not step.isdigit():
            continue
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        found.append((int(step), path))
    return sorted(found, reverse=True)
