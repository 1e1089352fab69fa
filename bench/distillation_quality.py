"""Distillation quality on the demo: SFT vs KD (cached teacher logits) vs on-policy KD at equal wall-clock compute.

1. Grow the demo: Magpie-style prompts synthesized by the teacher (clean ones only, deduplicated against the demo
   prompts), answered greedily by the teacher; the demo's own training prompts keep their committed teacher replies.
   Held-out prompts (a seeded split of the demo) get greedy teacher references, so retention means imitation.
2. Cache the teacher's top-k log-probabilities over the training file once (timed: the price of KD from cache).
3. Derive a student (K of the teacher's layers, chosen by measured starting loss) and train it by each method for
   the same number of training seconds (constant learning rate: every method stops mid-schedule alike).
4. Evaluate every student against the teacher: teacher-forced fidelity on the held-out greedy replies (KL, top-1
   agreement, cross-entropy, with stderr), greedy generation scored by ROUGE-L and chrF against the references,
   and fixed-length speed (min_new_tokens = max_new_tokens) at batch 1 and batch N.

Prints a table and writes bench/results/distillation_quality.json. Defaults fit ~40 min on 2 CPU cores:

    python bench/distillation_quality.py                      # the full run (2 cores: ~40 min)
    python bench/distillation_quality.py --quick              # a few-minute smoke run of every stage
    python bench/distillation_quality.py --budget 300 --synth 120 --keep-layers 12   # size choices
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = ROOT / "bench" / "results"
DEMO_PROMPTS = ROOT / "demo" / "prompts.jsonl"
DEMO_OUTPUTS = ROOT / "demo" / "demo_outputs.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", type=Path, default=None, help="teacher folder (default: the built demo model)")
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "distillation_quality")
    p.add_argument("--out", type=Path, default=None, help="JSON results (default bench/results/...)")
    p.add_argument("--methods", default="sft,kd,onpolicy")
    p.add_argument("--synth", type=int, default=160, help="Magpie prompts to synthesize (clean, new)")
    p.add_argument("--heldout", type=int, default=40)
    p.add_argument("--train-limit", type=int, default=0, help="use only this many demo training prompts (0: all)")
    p.add_argument("--budget", type=float, default=360.0, help="training seconds per method")
    p.add_argument("--keep-layers", type=int, default=10)
    p.add_argument("--layer-selection", default="importance", choices=("importance", "even"))
    p.add_argument("--calibration", type=int, default=64, help="training rows that choose the layers")
    p.add_argument("--top-k", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--kd-alpha", type=float, default=0.2)
    p.add_argument("--kd-temperature", type=float, default=1.0)
    p.add_argument("--onpolicy-lmbda", type=float, default=0.5)
    p.add_argument("--recovery-steps", type=int, default=0, help="recovery stage on the synthesized set first")
    p.add_argument("--max-new-tokens", type=int, default=96, help="teacher answers and held-out generation")
    p.add_argument("--gen-batch", type=int, default=8)
    p.add_argument("--speed-tokens", type=int, default=64)
    p.add_argument("--speed-batch", type=int, default=8)
    p.add_argument("--speed-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the setting, else cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks every stage in a few minutes")
    args = p.parse_args(argv)
    if args.quick:
        args.synth, args.heldout, args.train_limit, args.budget, args.calibration = 6, 6, 24, 20.0, 8
        args.max_new_tokens, args.speed_tokens, args.speed_repeats, args.top_k = 24, 8, 1, 8
        args.work = args.work.with_name(args.work.name + "_quick")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def conversation(system: str, prompt: str, reply: str) -> dict:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt},
                         {"role": "assistant", "content": reply}]}


def greedy(folder: Path, prompts: list[str], system: str, args) -> tuple[list[str], float]:
    """Greedy answers through the app's own local teacher (same rendering and stopping as generation jobs)."""
    from curation.teachers.base import GenerationParams
    from curation.teachers.local import LocalTeacher

    teacher = LocalTeacher(folder, batch_size=args.gen_batch, threads=args.threads)
    teacher.load()
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens, system_prompt=system)
    started = time.monotonic()
    answers = [""] * len(prompts)
    for result in teacher.generate(prompts, params):
        answers[result.index] = result.candidates[0].text
    return answers, time.monotonic() - started


def build_data(args, teacher_dir: Path, stages: dict) -> tuple[Path, Path, dict]:
    from curation.teachers.demo_model import DEMO_SYSTEM_PROMPT
    from curation.teachers.magpie import synthesize_prompts
    from training.ml.student import load_causal_lm, load_tokenizer

    prompts = [row["prompt"] for row in read_jsonl(DEMO_PROMPTS)]
    replies = {row["prompt"]: row["completions"][0]["text"] for row in read_jsonl(DEMO_OUTPUTS) if row["completions"]}
    order = list(range(len(prompts)))
    random.Random(args.seed).shuffle(order)
    heldout = [prompts[i] for i in order[: args.heldout]]
    train = [prompts[i] for i in order[args.heldout :] if prompts[i] in replies]
    if args.train_limit:
        train = train[: args.train_limit]

    started = time.monotonic()
    model, tokenizer = load_causal_lm(teacher_dir), load_tokenizer(teacher_dir)
    synth = synthesize_prompts(model, tokenizer, args.synth, system_prompt=DEMO_SYSTEM_PROMPT, temperature=0.9,
                               max_new_tokens=48, batch_size=16, seed=args.seed, existing=prompts,
                               keep_flagged=False)
    del model
    stages["synthesis_seconds"] = round(time.monotonic() - started, 1)
    new_prompts = [p.text for p in synth.prompts]
    log(f"synthesized {len(new_prompts)} clean prompts of {synth.generated} samples "
        f"({synth.duplicates} duplicates, {synth.empty} empty) in {stages['synthesis_seconds']} s")

    answers, seconds = greedy(teacher_dir, new_prompts + heldout, DEMO_SYSTEM_PROMPT, args)
    stages["teacher_answers_seconds"] = round(seconds, 1)
    log(f"teacher answered {len(answers)} prompts greedily in {seconds:.0f} s")
    synth_rows = [conversation(DEMO_SYSTEM_PROMPT, p, a) for p, a in zip(new_prompts, answers, strict=False) if a]
    heldout_rows = [conversation(DEMO_SYSTEM_PROMPT, p, a)
                    for p, a in zip(heldout, answers[len(new_prompts):], strict=True) if a]
    train_rows = [conversation(DEMO_SYSTEM_PROMPT, p, replies[p]) for p in train] + synth_rows
    random.Random(args.seed).shuffle(train_rows)
    data = args.work / "data"
    write_jsonl(data / "synthesized.jsonl", synth_rows)
    info = {"demo_train": len(train), "synthesized": len(synth_rows), "train_rows": len(train_rows),
            "heldout": len(heldout_rows), "synthesis": {"generated": synth.generated, "duplicates": synth.duplicates,
                                                        "empty": synth.empty}}
    return write_jsonl(data / "train.jsonl", train_rows), write_jsonl(data / "heldout.jsonl", heldout_rows), info


def train_student(method: str, args, teacher_dir: Path, train_file: Path, cache_dir: Path | None) -> dict:
    from training.ml.config import TrainConfig
    from training.ml.run import run_training

    out = args.work / "runs" / method
    config = TrainConfig(
        method=method, student_source="derive", teacher_path=str(teacher_dir), keep_layers=args.keep_layers,
        layer_selection=args.layer_selection, calibration_examples=args.calibration, train_file=str(train_file), output_dir=str(out),
        learning_rate=args.lr, num_epochs=1000, max_train_seconds=args.budget, lr_scheduler="constant",
        warmup_ratio=0.0, per_device_batch_size=args.batch_size, max_seq_len=args.max_seq_len,
        save_steps=10**9, save_total_limit=1, logging_steps=5, resume=False, precision="fp32",
        kd_alpha=args.kd_alpha, kd_temperature=args.kd_temperature, onpolicy_lmbda=args.onpolicy_lmbda,
        onpolicy_max_new_tokens=args.max_new_tokens, logit_cache_dir=str(cache_dir) if method == "kd" else "",
        recovery_file=str(args.work / "data" / "synthesized.jsonl") if args.recovery_steps else "",
        recovery_steps=args.recovery_steps, seed=args.seed,
    )
    result = run_training(config)
    report = json.loads((out / "report.json").read_text())
    selection = report.get("layer_selection") or {}
    return {
        "method": method if method != "kd" else "kd (cached top-k)",
        "model_dir": result.model_dir,
        "params": result.student_params,
        "teacher_params": result.teacher_params,
        "steps": result.steps,
        "train_seconds": result.train_seconds,
        "seconds_per_step": round(result.train_seconds / max(result.steps, 1), 3),
        "tokens_per_second": result.tokens_per_second,
        "final_loss": result.final_loss,
        "kept_layers": report.get("kept_layers"),
        "layer_strategy": selection.get("strategy"),
        "starting_loss": selection.get("starting_loss"),
        "candidates": selection.get("candidates"),
        "recovery": report.get("recovery"),
        "metrics": result.metrics,
    }


def text_scores(predictions: list[str], references: list[str]) -> dict:
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]
    chrf = sacrebleu.corpus_chrf(predictions, [references]).score / 100
    stderr = statistics.stdev(rouge) / len(rouge) ** 0.5 if len(rouge) > 1 else None
    return {"rougeL": statistics.fmean(rouge), "rougeL_stderr": stderr, "chrf": chrf}


def evaluate(row: dict, teacher, tokenizer, heldout: Path, speed_prompts: list[str], args, cache: dict) -> None:
    from evaluation.harness.fidelity import measure_fidelity
    from evaluation.harness.speed import measure_speed
    from training.ml.data import read_jsonl as read_rows
    from training.ml.student import load_causal_lm

    rows = read_rows(heldout)
    student = load_causal_lm(row["model_dir"])
    row["fidelity"] = measure_fidelity(student, teacher, tokenizer, rows, batch_size=8).summary()
    prompts = [r["messages"][1]["content"] for r in rows]
    system = rows[0]["messages"][0]["content"]
    predictions, seconds = greedy(Path(row["model_dir"]), prompts, system, args)
    row["heldout"] = {**text_scores(predictions, [r["messages"][-1]["content"] for r in rows]),
                      "generate_seconds": round(seconds, 1)}
    # Students of one shape run at one speed; measure each shape once.
    shape = student.config.num_hidden_layers
    if shape not in cache:
        cache[shape] = measure_speed(student, tokenizer, speed_prompts, batch_sizes=(1, args.speed_batch),
                                     new_tokens=args.speed_tokens, repeats=args.speed_repeats,
                                     threads=args.threads).to_dict()
    row["speed"] = cache[shape]
    del student


def table(rows: list[dict], teacher_speed: dict) -> str:
    t1 = {p["batch_size"]: p["tokens_per_second"] for p in teacher_speed["points"]}
    head = (f"{'model':20} {'params':>8} {'KL':>12} {'top-1':>12} {'CE':>6} {'ROUGE-L':>12} {'chrF':>6} "
            f"{'retain%':>8} {'speed b1':>9} {'speed bN':>9} {'train s':>8} {'steps':>6} {'s/step':>7}")
    lines = [head, "-" * len(head)]
    for row in rows:
        f, h = row["fidelity"], row["heldout"]
        speeds = {p["batch_size"]: p["tokens_per_second"] for p in row["speed"]["points"]}
        b1, bn = (speeds[b] / t1[b] for b in sorted(t1))
        lines.append(
            f"{row['method']:20} {row['params'] / 1e6:7.1f}M {f['kl']:6.3f}±{f['kl_stderr'] or 0:.3f} "
            f"{f['top1']:6.3f}±{f['top1_stderr'] or 0:.3f} {f['ce']:6.3f} {h['rougeL']:6.3f}±{h['rougeL_stderr'] or 0:.3f}"
            f" {h['chrf']:6.3f} {100 * h['rougeL']:7.1f}% {b1:8.2f}x {bn:8.2f}x {row['train_seconds']:8.0f} "
            f"{row['steps']:6d} {row['seconds_per_step']:7.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from curation.teachers.threads import apply_model_threads

    args.threads = apply_model_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stages: dict = {}
    if args.teacher is None:
        from curation.teachers.demo_model import build_demo_model

        args.teacher = build_demo_model(log=log)
    teacher_dir = args.teacher.resolve()
    log(f"teacher {teacher_dir}, {args.threads} torch threads, budget {args.budget:.0f} s per method")

    train_file, heldout_file, data_info = build_data(args, teacher_dir, stages)

    from training.ml.logit_cache import build_logit_cache
    from training.ml.student import count_params, load_causal_lm, load_tokenizer

    teacher, tokenizer = load_causal_lm(teacher_dir), load_tokenizer(teacher_dir)
    cache_dir = args.work / "logit_cache"
    t0 = time.monotonic()
    manifest = build_logit_cache(teacher, tokenizer, train_file, cache_dir, teacher_name=teacher_dir.name,
                                 top_k=args.top_k, max_seq_len=args.max_seq_len, batch_size=8)
    stages["logit_cache_seconds"] = round(time.monotonic() - t0, 1)
    log(f"logit cache: {manifest.tokens} tokens x top-{manifest.top_k}, {manifest.size_bytes / 1e6:.1f} MB, "
        f"{stages['logit_cache_seconds']} s")

    rows = []
    for method in args.methods.split(","):
        log(f"training {method} for {args.budget:.0f} s")
        rows.append(train_student(method.strip(), args, teacher_dir, train_file, cache_dir))
        log(f"{method}: {rows[-1]['steps']} steps, {rows[-1]['seconds_per_step']} s/step, "
            f"layers {rows[-1]['kept_layers']} ({rows[-1]['layer_strategy']}, starting loss {rows[-1]['starting_loss']})")

    held = read_jsonl(heldout_file)
    from evaluation.harness.speed import measure_speed, render_prompts

    speed_prompts = render_prompts(tokenizer, [r["messages"][:-1] for r in held])
    teacher_speed = measure_speed(teacher, tokenizer, speed_prompts, batch_sizes=(1, args.speed_batch),
                                  new_tokens=args.speed_tokens, repeats=args.speed_repeats,
                                  threads=args.threads).to_dict()
    speed_cache: dict = {}
    for row in rows:
        log(f"evaluating {row['method']}")
        evaluate(row, teacher, tokenizer, heldout_file, speed_prompts, args, speed_cache)

    sft = next((r for r in rows if r["method"] == "sft"), None)
    kd = next((r for r in rows if r["method"].startswith("kd")), None)
    summary = {
        "teacher": {"path": str(teacher_dir), "params": count_params(teacher), "speed": teacher_speed},
        "data": data_info,
        "logit_cache": {"top_k": manifest.top_k, "tokens": manifest.tokens, "size_bytes": manifest.size_bytes,
                        "sha256": manifest.sha256},
        "stages": stages,
        "kd_cost_per_step_vs_sft": round(kd["seconds_per_step"] / sft["seconds_per_step"], 3) if kd and sft else None,
        "students": rows,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "wall_seconds": round(time.monotonic() - started, 1),
        "note": "ROUGE-L/chrF are against the teacher's greedy references: the teacher scores 1.0 by construction, "
                "so retention % equals the student's ROUGE-L x 100. Speed ratios are student/teacher tokens/s at "
                "fixed length (batch 1 and batch N).",
    }
    print(f"\nteacher: {summary['teacher']['params'] / 1e6:.1f}M parameters; data: {data_info}")
    print(table(rows, teacher_speed))
    print(f"KD (cached logits) cost per step vs SFT: {summary['kd_cost_per_step_vs_sft']}; "
          f"cache build {stages['logit_cache_seconds']} s; total {summary['wall_seconds']:.0f} s")
    out = args.out or RESULTS / ("distillation_quality_quick.json" if args.quick else "distillation_quality.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
