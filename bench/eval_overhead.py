"""Overhead of our evaluation path over the bare ``lm_eval`` CLI, on the held-out task.

Evaluates a teacher and a student on a held-out file twice in one run: through
``evaluation.harness`` (task YAML written for you, one child process per model,
progress, measurements, per-sample logs) and through the bare ``lm_eval`` CLI on the
same task folder, model and options. Prints both wall times and the ratio, checks
the numbers are identical, and writes ``bench/results/eval_overhead.json``.

    python bench/eval_overhead.py                 # demo teacher (make demo-model) + derived student
    python bench/eval_overhead.py --tiny          # tiny models built in code, seconds
    python bench/eval_overhead.py --student PATH  # any student folder
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.harness import (  # noqa: E402
    HELDOUT_TASKS,
    EvalOptions,
    HeldoutSpec,
    ModelSpec,
    plan_runs,
    run_model_subprocess,
    write_heldout_tasks,
)
from evaluation.harness.process import PROJECT_ROOT, child_env  # noqa: E402
from evaluation.harness.runner import lm_eval_command  # noqa: E402

DEFAULT_TEACHER = ROOT / "var/data/models/smollm2-135m-instruct"
# Prompts with the demo teacher's answers.
DEMO_OUTPUTS = [ROOT / "demo" / "demo_outputs.jsonl"]
FALLBACK_ITEMS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is 7 + 5?", "7 + 5 = 12."),
    ("How do I boil an egg?", "Put the egg in boiling water for about nine minutes, then cool it in cold water."),
    ("Explain photosynthesis in one sentence.", "Plants turn light, water and carbon dioxide into sugar and oxygen."),
]


def write_heldout(path: Path, items: int) -> Path:
    """Held-out items in the curation export format: demo prompts with a teacher answer as reference."""
    pairs = []
    for source in (p for p in DEMO_OUTPUTS if p.exists()):
        for line in source.read_text().splitlines():
            row = json.loads(line)
            if row.get("completions"):
                pairs.append((row["prompt"], row["completions"][0]["text"]))
        break
    pairs = (pairs or FALLBACK_ITEMS)[:items]
    with path.open("w") as out:
        for i, (prompt, answer) in enumerate(pairs):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
            out.write(json.dumps({"id": f"item-{i}", "messages": messages}) + "\n")
    return path


def derive_every_third_layer(teacher: Path, folder: Path) -> Path:
    from training.ml.student import derive_student, export_student, load_causal_lm, load_tokenizer

    model = load_causal_lm(teacher)
    keep = math.ceil(model.config.num_hidden_layers / 3)
    student, kept = derive_student(model, keep)
    print(f"derived student: layers {kept} of {model.config.num_hidden_layers}", file=sys.stderr)
    return export_student(student, load_tokenizer(teacher), folder)


def run_ours(config) -> tuple[float, object]:
    started = time.perf_counter()
    result = run_model_subprocess(config)
    return time.perf_counter() - started, result


def run_cli(config, include_path: str, out: Path) -> float:
    """The same model, tasks and options through ``python -m lm_eval``, on an already written task folder."""
    command = lm_eval_command(config, list(HELDOUT_TASKS), include_path, str(out))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lm_eval", *command[1:]], env=child_env(config.offline),
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"lm_eval CLI failed:\n{proc.stderr[-3000:]}")
    return seconds


def same_numbers(result, cli_out: Path) -> bool:
    cli = json.loads(next(cli_out.rglob("results_*.json")).read_text())
    ours = json.loads((Path(result.output_dir) / "lm_eval_results.json").read_text())
    return cli["results"] == ours["results"]


def compare(configs, include_path: str, work: Path, repeat: int) -> dict:
    """Per model, our path and the CLI back to back (alternating which goes first), ``repeat`` times."""
    per_model = {}
    for config in configs:
        ours, cli, identical, result = [], [], True, None
        for attempt in range(repeat):
            cli_out = work / "cli" / config.model.label / str(attempt)
            if attempt % 2 == 0:
                seconds, result = run_ours(config)
                ours.append(seconds)
                cli.append(run_cli(config, include_path, cli_out))
            else:
                cli.append(run_cli(config, include_path, cli_out))
                seconds, result = run_ours(config)
                ours.append(seconds)
            identical &= same_numbers(result, cli_out)
        per_model[config.model.label] = {"ours": ours, "cli": cli, "identical": identical, "result": result}
    return per_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, default=DEFAULT_TEACHER)
    parser.add_argument("--student", type=Path, help="a student folder (default: the teacher, every 3rd layer)")
    parser.add_argument("--tiny", action="store_true", help="tiny models built in code instead of the demo teacher")
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--max-gen-toks", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="runs per path and model (medians are reported)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/eval_overhead.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="eval_overhead_"))
    teacher = args.teacher
    if args.tiny:
        from tests.tiny import save_tiny_model

        teacher = save_tiny_model(work / "teacher", layers=6, hidden=64)
    elif not (teacher / "config.json").exists():
        raise SystemExit(f"no teacher at {teacher}: run `make demo-model`, or pass --teacher PATH or --tiny")
    student = args.student or derive_every_third_layer(teacher, work / "student")
    heldout = write_heldout(work / "heldout.jsonl", args.items)

    options = EvalOptions(batch_size=args.batch_size)
    configs = plan_runs(
        [ModelSpec("teacher", "hf", str(teacher), role="teacher"), ModelSpec("student", "hf", str(student))],
        output_dir=str(work / "ours"),
        heldout=HeldoutSpec(str(heldout), max_gen_toks=args.max_gen_toks),
        options=options,
    )
    # The CLI needs task YAML to exist; writing it is part of our path, so it is done here untimed.
    cli_tasks = work / "cli_tasks"
    write_heldout_tasks(heldout, cli_tasks / "heldout", chat_template=options.apply_chat_template,
                        max_gen_toks=args.max_gen_toks)
    per_model = compare(configs, str(cli_tasks), work, args.repeat)
    ours_s = sum(statistics.median(m["ours"]) for m in per_model.values())
    cli_s = sum(statistics.median(m["cli"]) for m in per_model.values())
    identical = all(m["identical"] for m in per_model.values())
    report = {
        "teacher": str(teacher), "student": str(student), "items": sum(1 for _ in heldout.open()),
        "max_gen_toks": args.max_gen_toks, "batch_size": args.batch_size, "repeat": args.repeat,
        "ours_seconds": round(ours_s, 2), "cli_seconds": round(cli_s, 2), "ratio": round(ours_s / cli_s, 3),
        "identical_numbers": identical,
        "models": {
            label: {"ours_seconds": [round(x, 2) for x in m["ours"]], "cli_seconds": [round(x, 2) for x in m["cli"]],
                    "metrics": {t: {k: v.value for k, v in ms.items()} for t, ms in m["result"].metrics.items()},
                    "measurements": vars(m["result"].measurements)}
            for label, m in per_model.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"ours: {ours_s:.1f} s   bare lm_eval CLI: {cli_s:.1f} s   ratio: {ours_s / cli_s:.3f}x   "
          f"identical numbers: {identical}   ({report['items']} items, median of {args.repeat})")
    for label, m in per_model.items():
        r, ms = m["result"], m["result"].measurements
        print(f"  {label:8} {ms.parameter_count:>12,} params  {ms.size_on_disk_bytes / 1e6:8.1f} MB  "
              f"{ms.tokens_per_second} tokens/s  exact_match {r.metrics['heldout_gen']['exact_match'].value:.3f}  "
              f"rougeL {r.metrics['heldout_gen']['rougeL'].value:.3f}  "
              f"word_perplexity {r.metrics['heldout_ppl']['word_perplexity'].value:.2f}")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
