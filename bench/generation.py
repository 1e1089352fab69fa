"""Local-teacher generation throughput at batch sizes 1, 8 and 32, on the demo prompts and the demo teacher.

    python bench/generation.py [--prompts 32] [--max-new-tokens 64] [--batch-sizes 1,8,32] [--threads N]

Greedy decoding (so every batch size does the same work and the outputs can be compared), n=1, the chat
template, left padding: exactly the path a generation job takes. Tokens/s counts generated tokens up to and
including the end token, over wall time, after the model is loaded. Builds the demo model first if needed.
Prints one line per batch size and writes bench/results/generation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.teachers import GenerationParams, LocalTeacher  # noqa: E402
from curation.teachers.demo_model import DEMO_MODEL_NAME, DEMO_SYSTEM_PROMPT, build_demo_model  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "generation.json"
PROMPTS = ROOT / "demo" / "prompts.jsonl"


def measure(teacher: LocalTeacher, prompts: list[str], params: GenerationParams) -> dict:
    started = time.perf_counter()
    results = list(teacher.generate(prompts, params))
    seconds = time.perf_counter() - started
    candidates = [r.candidates[0] for r in sorted(results, key=lambda r: r.index)]
    tokens = sum(c.completion_tokens for c in candidates)
    return {
        "batch_size": teacher.batch_size,
        "seconds": round(seconds, 2),
        "generated_tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1),
        "truncated": sum(c.finish_reason == "length" for c in candidates),
        "texts": [c.text for c in candidates],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)

    import torch

    rows = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    prompts = [row["prompt"] for row in rows[: args.prompts]]
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens, system_prompt=DEMO_SYSTEM_PROMPT)
    folder = build_demo_model(log=print)
    teacher = LocalTeacher(folder, source=DEMO_MODEL_NAME, threads=args.threads)
    started = time.perf_counter()
    teacher.load()
    load_seconds = time.perf_counter() - started
    runs = []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        teacher.batch_size = batch_size
        run = measure(teacher, prompts, params)
        runs.append(run)
        print(f"batch {batch_size:>3}: {run['tokens_per_second']:>6.1f} tokens/s "
              f"({run['generated_tokens']} tokens in {run['seconds']:.1f} s, {run['truncated']} truncated)")
    reference = runs[0]["texts"]
    for run in runs:
        # Left padding must not change greedy outputs; a few may differ by float rounding in long batches.
        run["same_as_first"] = sum(a == b for a, b in zip(run.pop("texts"), reference))
    result = {
        "model": DEMO_MODEL_NAME,
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "decoding": "greedy, chat template, left padding",
        "load_seconds": round(load_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
