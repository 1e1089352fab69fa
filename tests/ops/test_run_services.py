"""`make run`'s process recipe (bin/run-services, which the Makefile execs): the real web server and the two
real workers start from this checkout's interpreter in a temporary var dir, and Ctrl+C (SIGINT to the
foreground process group) or SIGTERM (to the script alone) stops everything within 10 s, leaving no process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_processes(sid: int) -> list[str]:
    """Live processes of a session (zombies excluded: they hold no resources and are reaped by their parent)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(f"{stat.parent.name} {text[text.index('(') + 1:text.rindex(')')]}")
    return found


def wait_until(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout} s; log:\n{log.read_text(errors='replace')[-4000:]}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _as_from_a_terminal() -> None:
    """SIGINT as a terminal hands it to `make run`. A suite started in the background by a non-interactive shell
    (`pytest &`) inherits SIGINT ignored, and bash cannot trap a signal ignored when it starts, so Ctrl+C
    would be tested against a script that never sees it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT to the group (Ctrl+C)", "SIGTERM to the script"])
def test_run_starts_web_and_two_workers_and_stops_cleanly(tmp_path, how):
    port, log = free_port(), tmp_path / "run.log"
    env = {**os.environ, "PY": sys.executable, "DISTILLERY_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(ROOT / "bin/run-services"), f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_as_from_a_terminal)
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/accounts/login/"), 90, "the web server did not answer", log)
        wait_until(lambda: log.read_text(errors="replace").count(" ready.") >= 2, 90, "two workers were not ready", log)
        text = log.read_text(errors="replace")
        assert "[queues]" in text and ".> default" in text and ".> generation" in text and ".> evaluation" in text
        assert len(session_processes(proc.pid)) >= 5  # script, web, two worker mains, their pool children

        started = time.monotonic()
        if how.startswith("SIGINT"):
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        wait_until(lambda: not session_processes(proc.pid), 10 - (time.monotonic() - started),
                   "processes were left behind", log)
        assert time.monotonic() - started < 10
        assert proc.returncode in (130, 143)
        text = log.read_text(errors="replace")
        assert text.count("Warm shutdown") <= 2  # once per worker, not in a loop
        print(f"{how}: {text[text.index('Stopped in'):].splitlines()[0]}")
    finally:
        for line in session_processes(proc.pid):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def test_make_run_execs_this_script():
    """`make run` ends in bin/run-services: the test above exercises exactly what it starts."""
    recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "exec bin/run-services $(HOST):$(PORT)" in recipe and "celery" not in recipe and "trap" not in recipe
