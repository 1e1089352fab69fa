"""The training subprocess and its file protocol, seen from the worker (no database here).

A run folder holds config.json, data/, checkpoints/, model/, and the files `python -m training.ml` reads and
writes: progress.jsonl, CANCEL, result.json, error.txt, report.json. The process is started through
`accelerate launch`, so more GPUs or machines are a different accelerate config file, not different code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from training.ml.config import TrainConfig
from training.ml.protocol import (
    CANCEL_FILE,
    DIE_WITH_PARENT_ENV,
    ERROR_FILE,
    PROGRESS_FILE,
    REPORT_FILE,
    RESULT_FILE,
    complete_checkpoints,
    die_with_parent,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ACCELERATE_CONFIG = ROOT / "docs" / "accelerate" / "single.yaml"
LOG_FILE = "train.log"
CONFIG_FILE = "config.json"


@dataclass
class Outcome:
    status: str  # succeeded | cancelled | failed
    result: dict | None
    error: str
    lost: bool = False  # the process died without an answer (killed, out of memory): the attempt, not the run


class TrainingProcess:
    """One attempt of a run: start, read new progress events, ask to cancel, collect the outcome."""

    def __init__(self, run_dir: Path | str, accelerate_config: Path | str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.accelerate_config = Path(accelerate_config or DEFAULT_ACCELERATE_CONFIG)
        self.proc: subprocess.Popen | None = None
        self._offset = 0
        self._partial = b""

    def start(self, config: TrainConfig) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Files of an earlier attempt would be read as this attempt's answer.
        for name in (CANCEL_FILE, RESULT_FILE, ERROR_FILE):
            (self.run_dir / name).unlink(missing_ok=True)
        progress = self.run_dir / PROGRESS_FILE
        self._offset = progress.stat().st_size if progress.exists() else 0
        config.to_json(self.run_dir / CONFIG_FILE)
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(self.accelerate_config),
            "-m", "training.ml", "--config", str(self.run_dir / CONFIG_FILE),
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", **{DIE_WITH_PARENT_ENV: "1"})
        with open(self.run_dir / LOG_FILE, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # The launcher dies with the worker; training.ml, asked through the env, dies with the launcher.
                # noqa below: the pool process's only other thread is the job heartbeat (an Event wait and short
                # UPDATEs); between fork and exec the child only calls prctl.
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def new_events(self) -> list[dict]:
        """Complete JSON lines appended to progress.jsonl since the last call."""
        path = self.run_dir / PROGRESS_FILE
        if not path.exists():
            return []
        with path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events

    def cancel(self) -> None:
        (self.run_dir / CANCEL_FILE).touch()

    def stop(self, timeout: float = 30) -> None:
        """Terminate, then kill: used when the worker gives up on the attempt."""
        if not self.running:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 60, max_chars: int = 8000) -> str:
        """The end of the log, read from its last 64 KB (the file grows for the whole run)."""
        path = self.run_dir / LOG_FILE
        if not path.exists():
            return ""
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 65536))
            text = handle.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])[-max_chars:]

    def outcome(self) -> Outcome:
        code = self.proc.wait() if self.proc is not None else None
        result_path, error_path = self.run_dir / RESULT_FILE, self.run_dir / ERROR_FILE
        if code == 0 and result_path.exists():
            result = json.loads(result_path.read_text())
            return Outcome(result["status"], result, "")
        if error_path.exists():
            return Outcome("failed", None, error_path.read_text()[-10000:])
        signal_number = death_signal(code, self.log_tail(40))
        if signal_number == 9:
            reason = "the training process was killed by SIGKILL (exit 137), most likely out of memory"
        elif signal_number:
            reason = f"the training process was killed by signal {signal_number}"
        else:
            reason = f"the training process ended without a result (exit code {code})"
        return Outcome("failed", None, reason, lost=True)


# `accelerate launch` reports its child's death in its own words and exits 1: read the signal from its log.
_DIED = re.compile(r"died with <Signals\.SIG\w+: (\d+)>|returned non-zero exit status -(\d+)|exit status (137)")


def death_signal(code: int | None, log_tail: str) -> int | None:
    """The signal that ended the training process, from the exit code or the launcher's last words."""
    if code is not None and code < 0:
        return -code
    if code == 137:
        return 9
    found = _DIED.findall(log_tail)
    if found:
        number = int(next(n for n in found[-1] if n))
        return 9 if number == 137 else number
    return None


def checkpoint_step(run_dir: Path | str) -> int:
    """The step of the newest complete checkpoint (0 when there is none)."""
    found = complete_checkpoints(Path(run_dir) / "checkpoints")
    return found[0][0] if found else 0


def read_report(run_dir: Path | str) -> dict:
    path = Path(run_dir) / REPORT_FILE
    return json.loads(path.read_text()) if path.exists() else {}
