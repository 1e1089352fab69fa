"""`python -m training.ml --config CONFIG.json`, also under `accelerate launch -m training.ml --config ...`.

The files in output_dir are the whole interface to whoever started the process:
  progress.jsonl  one JSON event per line (written by the main process only)
  CANCEL          created by the caller; training stops at the next step and saves a checkpoint
  result.json     the TrainResult, written at the end (status "succeeded" or "cancelled")
  error.txt       the traceback when training failed; the exit code is then nonzero
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from training.ml.protocol import CANCEL_FILE, ERROR_FILE, PROGRESS_FILE, RESULT_FILE, die_with_parent_if_asked

# Only local folders are ever loaded; a missing file must fail fast, not wait on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def is_main_process() -> bool:
    # accelerate launch / torchrun set RANK before Python starts; a plain run has none and is the main process.
    return int(os.environ.get("RANK", "0")) == 0


def write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def progress_writer(path: Path):
    def write(event: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")
        if event["event"] in ("log", "stopping"):
            parts = [f"{event['event']} step {event['step']}/{event['total']}"]
            for key in ("loss", "learning_rate", "tokens_per_second", "eta_seconds"):
                if event.get(key) is not None:
                    parts.append(f"{key}={event[key]:.4g}")
            print(" ".join(parts), flush=True)

    return write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ml", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="path to a TrainConfig JSON file")
    args = parser.parse_args(argv)
    die_with_parent_if_asked()

    from training.ml.config import TrainConfig

    config = TrainConfig.from_json(Path(args.config))
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    main_process = is_main_process()
    cancel = out / CANCEL_FILE
    try:
        from transformers.utils import logging as hf_logging

        from training.ml.run import run_training

        hf_logging.disable_progress_bar()  # tqdm bars in a log file are noise

        result = run_training(
            config,
            progress=progress_writer(out / PROGRESS_FILE) if main_process else None,
            should_stop=cancel.exists,
        )
    except Exception:
        if main_process:
            write_atomic(out / ERROR_FILE, traceback.format_exc())
        traceback.print_exc()
        return 1
    if main_process:
        write_atomic(out / RESULT_FILE, json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"{result.status}: {result.steps}/{result.total_steps} steps, final loss {result.final_loss}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
