"""`python -m training.ml` as the Celery task runs it: files in, files out, exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _launch(config_path: Path, *, accelerate: bool = False) -> subprocess.CompletedProcess:
    if accelerate:
        command = [sys.executable, "-m", "accelerate.commands.launch",
                   "--config_file", str(ROOT / "docs/accelerate/single.yaml"), "-m", "training.ml"]
    else:
        command = [sys.executable, "-m", "training.ml"]
    return subprocess.run(
        [*command, "--config", str(config_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_accelerate_launch_writes_progress_and_result(make_config, tmp_path):
    config = make_config(max_steps=6, logging_steps=2)
    config.to_json(tmp_path / "config.json")

    done = _launch(tmp_path / "config.json", accelerate=True)

    assert done.returncode == 0, done.stderr[-3000:]
    out = Path(config.output_dir)
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start"
    assert [event["step"] for event in events if event["event"] == "log"] == [1, 2, 4, 6]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "succeeded" and result["steps"] == 6
    assert (out / "model" / "model.safetensors").exists()
    assert "log step 6/6" in done.stdout
    assert not (out / "error.txt").exists()


def test_a_cancel_file_stops_at_the_next_step_with_a_checkpoint(make_config, tmp_path):
    config = make_config()
    config.to_json(tmp_path / "config.json")
    Path(config.output_dir).mkdir(parents=True)
    (Path(config.output_dir) / "CANCEL").touch()

    done = _launch(tmp_path / "config.json")

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((Path(config.output_dir) / "result.json").read_text())
    assert result["status"] == "cancelled" and result["steps"] == 1
    assert Path(result["checkpoint"]).name == "checkpoint-1"


def test_a_failure_exits_nonzero_with_the_error_in_error_txt(make_config, tmp_path):
    config = make_config(train_file=str(tmp_path / "missing.jsonl"))
    config.to_json(tmp_path / "config.json")

    done = _launch(tmp_path / "config.json")

    assert done.returncode != 0
    error = (Path(config.output_dir) / "error.txt").read_text()
    assert "missing.jsonl does not exist" in error
    assert not (Path(config.output_dir) / "result.json").exists()
