"""Teacher generation throughput per engine, side by side, at batch sizes 1, 8 and 32 on the same prompts.

    python bench/generation.py [--prompts 32] [--max-new-tokens 64] [--batch-sizes 1,8,32] [--threads N]
                               [--engines transformers,llama.cpp,vllm]

The demo teacher (SmolLM2-135M-Instruct) through every engine this machine can run: transformers on the
converted safetensors folder, llama.cpp on the wheel's Q4_1 GGUF itself (needs `make llama-cpp`), vLLM on the
folder (needs a GPU and the vllm package). An engine that cannot run here is listed with the reason.

Greedy decoding, n=1, the chat template and the demo system prompt: exactly the path a generation job takes.
Tokens/s counts generated tokens up to and including the end token, over wall time, after the model is
loaded. Greedy outputs are compared with transformers' batch-1 outputs (identical texts, and the share of the
shorter text before the first difference). Threads follow the app's rule (curation.teachers.threads).
Writes bench/results/generation.json.
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
from curation.teachers.demo_model import (  # noqa: E402
    DEMO_MODEL_NAME,
    DEMO_SYSTEM_PROMPT,
    build_demo_model,
    fetch_demo_gguf,
)
from curation.teachers.llama_cpp import INSTALL_HINT, LlamaCppTeacher, llama_cpp_available  # noqa: E402
from curation.teachers.threads import model_threads  # noqa: E402
from curation.teachers.vllm_engine import VLLMTeacher, vllm_ready  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "generation.json"
PROMPTS = ROOT / "demo" / "prompts.jsonl"
ENGINES = ("transformers", "llama.cpp", "vllm")


def measure(teacher, prompts: list[str], params: GenerationParams) -> dict:
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


def agreement(texts: list[str], reference: list[str]) -> dict:
    """Identical outputs, and how far (share of the shorter text) two outputs agree before they part."""
    shares = []
    for a, b in zip(texts, reference):
        shorter = min(len(a), len(b)) or 1
        common = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        shares.append(common / shorter)
    return {"identical": sum(a == b for a, b in zip(texts, reference)), "of": len(reference),
            "mean_common_prefix": round(sum(shares) / max(1, len(shares)), 3)}


def build_teacher(engine: str, threads: int):
    """The engine's client for the demo teacher, or the reason this machine cannot run it."""
    if engine == "transformers":
        return LocalTeacher(build_demo_model(log=print), source=DEMO_MODEL_NAME, threads=threads), None
    if engine == "llama.cpp":
        if not llama_cpp_available():
            return None, INSTALL_HINT
        return LlamaCppTeacher(fetch_demo_gguf(), source=DEMO_MODEL_NAME, threads=threads), None
    if reason := vllm_ready():
        return None, reason
    return VLLMTeacher(build_demo_model(log=print), source=DEMO_MODEL_NAME), None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--threads", type=int, default=None, help="model threads (default: the app's rule)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args(argv)

    rows = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    prompts = [row["prompt"] for row in rows[: args.prompts]]
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens, system_prompt=DEMO_SYSTEM_PROMPT)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    threads = model_threads(args.threads)
    load_before = round(os.getloadavg()[0], 2)
    engines: dict[str, dict] = {}
    for engine in args.engines.split(","):
        teacher, reason = build_teacher(engine, threads)
        if teacher is None:
            engines[engine] = {"skipped": reason}
            print(f"{engine}: skipped: {reason}")
            continue
        started = time.perf_counter()
        teacher.load()
        entry = {"load_seconds": round(time.perf_counter() - started, 2), "runs": []}
        for batch_size in batch_sizes:
            teacher.batch_size = batch_size
            run = measure(teacher, prompts, params)
            entry["runs"].append(run)
            print(f"{engine:>12} batch {batch_size:>3}: {run['tokens_per_second']:>6.1f} tokens/s "
                  f"({run['generated_tokens']} tokens in {run['seconds']:.1f} s, {run['truncated']} truncated)")
        engines[engine] = entry
        del teacher  # free the model before the next engine loads its own

    measured = {name: e for name, e in engines.items() if "runs" in e}
    reference = next(iter(measured.values()))["runs"][0]["texts"] if measured else []
    for entry in measured.values():
        for run in entry["runs"]:
            run["greedy_vs_reference"] = agreement(run.pop("texts"), reference)

    print(f"\ntokens/s, {len(prompts)} prompts, greedy, {args.max_new_tokens} new tokens max, {threads} threads, "
          f"load average {load_before} -> {os.getloadavg()[0]:.2f}")
    print("batch " + "".join(f"{name:>14}" for name in engines))
    for i, batch_size in enumerate(batch_sizes):
        cells = [f"{e['runs'][i]['tokens_per_second']:>14.1f}" if "runs" in e else f"{'-':>14}" for e in engines.values()]
        print(f"{batch_size:>5} " + "".join(cells))
    reference_name = next(iter(measured), "-")
    print(f"greedy outputs identical to {reference_name} batch {batch_sizes[0]}:")
    for name, entry in measured.items():
        parts = [f"batch {r['batch_size']}: {r['greedy_vs_reference']['identical']}/{r['greedy_vs_reference']['of']}"
                 f" (common prefix {r['greedy_vs_reference']['mean_common_prefix']:.0%})" for r in entry["runs"]]
        print(f"  {name}: " + ", ".join(parts))

    result = {
        "model": DEMO_MODEL_NAME,
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "decoding": "greedy, chat template, demo system prompt",
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "load_average_1m_before": load_before,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "engines": engines,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
