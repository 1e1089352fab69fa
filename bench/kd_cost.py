"""Cost per training step of KD from cached teacher logits against SFT, measured interleaved.

The two methods run alternately in one process on the same student folder, training file and batch size
(SFT, KD, SFT, KD, ...), so a load that comes and goes on a shared machine falls on both alike; each round is a
short real training run (`training.ml.run.run_training`, the worker's code path) and the Trainer's own
runtime / steps gives its seconds per step. The first round of each method is a warm-up and is not counted.

    python bench/kd_cost.py --student DIR --teacher DIR --train-file FILE --cache DIR [--steps 8] [--rounds 3]

`bench/distillation_quality.py` leaves all four under var/bench/distillation_quality/ (the SFT student's model,
the data and the logit cache), which are the defaults. Prints s/step per method with the spread over rounds and
the ratio, and writes bench/results/kd_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
WORK = ROOT / "var" / "bench" / "distillation_quality"


def one_round(method: str, args: argparse.Namespace, out: Path) -> dict:
    from training.ml.config import TrainConfig
    from training.ml.run import run_training

    config = TrainConfig(
        method=method, student_source="folder", student_path=str(args.student), teacher_path=str(args.teacher),
        train_file=str(args.train_file), output_dir=str(out), learning_rate=1e-5, max_steps=args.steps,
        lr_scheduler="constant", warmup_ratio=0.0, per_device_batch_size=args.batch_size,
        max_seq_len=args.max_seq_len, save_steps=10**9, save_total_limit=1, logging_steps=args.steps,
        resume=False, precision="fp32", kd_alpha=0.2, logit_cache_dir=str(args.cache) if method == "kd" else "",
        seed=0,
    )
    result = run_training(config)
    runtime = result.metrics["train_runtime"]
    return {"steps": result.steps, "seconds": runtime, "seconds_per_step": runtime / max(result.steps, 1),
            "tokens_per_second": result.tokens_per_second, "load_average": os.getloadavg()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", type=Path, default=WORK / "runs" / "sft" / "model")
    p.add_argument("--teacher", type=Path, default=ROOT / "var" / "data" / "models" / "smollm2-135m-instruct")
    p.add_argument("--train-file", type=Path, default=WORK / "data" / "train.jsonl")
    p.add_argument("--cache", type=Path, default=WORK / "logit_cache")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="counted rounds per method, after one warm-up each")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    rounds: dict[str, list[dict]] = {"sft": [], "kd": []}
    with tempfile.TemporaryDirectory(prefix="kd-cost-") as tmp:
        for n in range(args.rounds + 1):
            for method in ("sft", "kd"):
                r = one_round(method, args, Path(tmp) / f"{method}-{n}")
                print(f"round {n}{' (warm-up)' if n == 0 else ''} {method}: {r['seconds_per_step']:.2f} s/step, "
                      f"{r['tokens_per_second']:.0f} tokens/s, load {r['load_average']:.1f}", flush=True)
                if n:
                    rounds[method].append(r)
    summary = {}
    for method, rs in rounds.items():
        per_step = [r["seconds_per_step"] for r in rs]
        summary[method] = {"seconds_per_step": statistics.fmean(per_step),
                           "stdev": statistics.stdev(per_step) if len(per_step) > 1 else 0.0, "rounds": rs}
    ratios = [k["seconds_per_step"] / s["seconds_per_step"] for s, k in zip(rounds["sft"], rounds["kd"], strict=True)]
    summary["kd_vs_sft_per_step"] = statistics.fmean(ratios)
    summary["ratio_per_round"] = ratios
    summary["config"] = {k: str(v) for k, v in vars(args).items()}
    print(f"SFT {summary['sft']['seconds_per_step']:.2f} ± {summary['sft']['stdev']:.2f} s/step, "
          f"KD from cache {summary['kd']['seconds_per_step']:.2f} ± {summary['kd']['stdev']:.2f} s/step "
          f"({args.rounds} rounds of {args.steps} steps, batch {args.batch_size}, {args.threads} thread(s)): "
          f"KD / SFT = {summary['kd_vs_sft_per_step']:.2f}× (per round: {', '.join(f'{r:.2f}' for r in ratios)})")
    out = ROOT / "bench" / "results" / "kd_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
