"""Training throughput: our path (run_training) against a plain TRL SFTTrainer, in one process.

The student is derived once (K of the teacher's layers) and saved; every row then starts from that folder, with
the same data, batch size, sequence length, learning rate, seed and number of steps. Tokens are real (non-pad)
input tokens, counted the same way for every row; the first `--warmup` steps are not timed.

Rows: ours with its defaults (precision auto: bf16 autocast on a CPU/GPU with native bf16), padded and padding-free,
and ours in fp32; TRL SFTTrainer with its defaults (what `SFTTrainer(model, args=SFTConfig(per_device_train_batch_size,
max_length, max_steps))` gives: gradient checkpointing on, bf16 autocast), TRL padding-free, and TRL in fp32
without checkpointing (matched to ours_fp32).
On a shared machine use `--repeat 3`: rows are interleaved and the median run of each is reported.

    python bench/training_throughput.py [--teacher var/data/models/smollm2-135m-instruct] [--steps 8]
    python bench/training_throughput.py --tiny          # a tiny model built in code: checks the bench runs
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_TEACHER = ROOT / "var" / "data" / "models" / "smollm2-135m-instruct"
DEMO_FILES = [ROOT / "demo" / "demo_outputs.jsonl"]
RESULTS = ROOT / "bench" / "results" / "training_throughput.json"


def sft_rows(path: Path | None, count: int) -> list[dict]:
    """SFT rows from an export (messages), or from the demo outputs (prompt + first candidate)."""
    candidates = [path] if path else [p for p in DEMO_FILES if p.exists()]
    if not candidates:
        sys.exit("no data: pass --data FILE (an SFT export) or generate demo/demo_outputs.jsonl")
    rows = []
    with candidates[0].open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if "messages" not in row:
                row = {"messages": [{"role": "user", "content": row["prompt"]},
                                    {"role": "assistant", "content": row["completions"][0]["text"]}]}
            rows.append(row)
    while len(rows) < count:  # repeat a small file so every step has a full batch
        rows += rows
    print(f"data: {candidates[0].relative_to(ROOT) if candidates[0].is_relative_to(ROOT) else candidates[0]}")
    return rows[:count]


class StepTimer:
    """Wall time, process CPU time and real-token count at the end of every step.

    CPU seconds are reported beside wall seconds: on a shared machine a neighbour's load stretches wall time
    much more than the CPU time this process spends.
    """

    def __init__(self) -> None:
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                timer.marks = [(0, time.perf_counter(), time.process_time(), state.num_input_tokens_seen)]

            def on_step_end(self, args, state, control, **kwargs):
                timer.marks.append((state.global_step, time.perf_counter(), time.process_time(),
                                    state.num_input_tokens_seen))

        self.callback = _Callback()
        self.marks: list[tuple[int, float, float, int]] = []

    def figures(self, warmup: int) -> dict:
        (_, t0, c0, n0), (steps, t1, c1, n1) = self.marks[warmup], self.marks[-1]
        seconds, cpu, tokens = t1 - t0, c1 - c0, n1 - n0
        return {"timed_steps": steps - warmup, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                "tokens": tokens, "tokens_per_second": round(tokens / seconds, 1),
                "tokens_per_cpu_second": round(tokens / cpu, 1),
                "seconds_per_step": round(seconds / (steps - warmup), 3)}


def run_ours(args, student: Path, data: Path, out: Path, packing: bool, precision: str = "auto") -> dict:
    from training.ml.config import TrainConfig
    from training.ml.run import run_training

    config = TrainConfig(
        method="sft", student_source="folder", student_path=str(student), train_file=str(data),
        output_dir=str(out), max_steps=args.steps + args.warmup, per_device_batch_size=args.batch,
        max_seq_len=args.seq_len, learning_rate=args.lr, seed=0, save_steps=10**6, logging_steps=10**6,
        warmup_ratio=0.0, packing=packing, resume=False, precision=precision,
    )
    from training.ml.trainers import resolve_precision

    timer = StepTimer()
    result = run_training(config, callbacks=[timer.callback])
    return {**timer.figures(args.warmup), "train_loss": result.train_loss, "precision": resolve_precision(config)}


def run_trl(args, student: Path, rows: list[dict], out: Path, **settings) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from training.ml.trainers import TokenCountMixin

    class CountingSFTTrainer(TokenCountMixin, SFTTrainer):
        """Counts tokens exactly as our trainer does; the training itself is TRL's."""

    dataset = Dataset.from_list(
        [{"prompt": row["messages"][:-1], "completion": row["messages"][-1:]} for row in rows]
    )
    settings.setdefault("max_length", args.seq_len)
    sft_args = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=args.batch,
        max_steps=args.steps + args.warmup, learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=0,
        seed=0, data_seed=0, save_strategy="no",
        logging_steps=10**6, report_to="none", disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(), **settings,
    )
    timer = StepTimer()
    trainer = CountingSFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32), args=sft_args,
        train_dataset=dataset, processing_class=AutoTokenizer.from_pretrained(student), callbacks=[timer.callback],
    )
    output = trainer.train()
    return {**timer.figures(args.warmup), "train_loss": output.training_loss}


def prepare(args, work: Path) -> tuple[Path, Path, list[dict], dict]:
    """Derive and save the student once; write the SFT file both paths read."""
    from training.ml.student import count_params, derive_student, load_causal_lm, load_tokenizer

    teacher_path = Path(args.teacher)
    if args.tiny:
        from tests.tiny import save_tiny_model

        teacher_path = save_tiny_model(work / "teacher", layers=6, hidden=128)
    elif not (teacher_path / "config.json").exists():
        sys.exit(f"no model folder at {teacher_path}: build it with `make demo-model`, or run with --tiny")
    teacher = load_causal_lm(teacher_path)
    keep = min(args.keep_layers, teacher.config.num_hidden_layers)
    student, kept = derive_student(teacher, keep)
    folder = work / "student"
    student.save_pretrained(folder)
    load_tokenizer(teacher_path).save_pretrained(folder)
    info = {"teacher": str(teacher_path), "teacher_params": count_params(teacher),
            "student_params": count_params(student), "kept_layers": kept}
    del teacher, student
    rows = sft_rows(Path(args.data) if args.data else None, args.batch * (args.steps + args.warmup))
    data = work / "sft.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder, data, rows, info


ROWS = ("ours", "ours_padding_free", "ours_fp32", "trl_defaults", "trl_padding_free", "trl_matched")


def run_row(name: str, args, work: Path, student: Path, data: Path, rows: list[dict]) -> dict:
    if name == "ours":
        return run_ours(args, student, data, work / name, packing=False)
    if name == "ours_padding_free":
        return run_ours(args, student, data, work / name, packing=True)
    if name == "ours_fp32":
        return run_ours(args, student, data, work / name, packing=False, precision="fp32")
    if name == "trl_defaults":
        return run_trl(args, student, rows, work / name)
    if name == "trl_padding_free":
        # TRL refuses padding-free with max_length unless it packs; the demo rows are far shorter than seq_len.
        return run_trl(args, student, rows, work / name, padding_free=True, max_length=None)
    return run_trl(args, student, rows, work / name, gradient_checkpointing=False, bf16=False)


def measure(args, work: Path, student: Path, data: Path, rows: list[dict]) -> dict:
    """Every row `--repeat` times, interleaved (ABC ABC) so a neighbour's load falls on all rows alike."""
    names = [name for name in ROWS if not args.only or name in args.only]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(args.repeat):
        for name in names:
            row = run_row(name, args, work, student, data, rows)
            runs[name].append(row)
            print(f"{name:18s} {row['tokens_per_second']:8.1f} tokens/s {row['tokens_per_cpu_second']:8.1f} "
                  f"tokens/cpu-s {row['seconds_per_step']:7.3f} s/step  mean loss {row['train_loss']:.4f}", flush=True)
            gc.collect()
    # The median run of each row stands for it; all runs are kept in the JSON.
    return {name: {**sorted(found, key=lambda r: r["tokens_per_second"])[len(found) // 2], "runs": found}
            for name, found in runs.items()}


def ratios(results: dict, key: str = "tokens_per_second") -> dict[str, float]:
    speed = {name: row[key] for name, row in results.items()}
    pairs = [("ours", "trl_defaults"), ("ours_padding_free", "trl_defaults"), ("ours_padding_free", "trl_padding_free"),
             ("ours_fp32", "trl_matched"), ("ours_padding_free", "ours"), ("ours", "ours_fp32"),
             ("trl_padding_free", "trl_defaults"), ("trl_matched", "trl_defaults")]
    return {f"{a}_vs_{b}": round(speed[a] / speed[b], 3) for a, b in pairs if a in speed and b in speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=str(DEFAULT_TEACHER))
    parser.add_argument("--tiny", action="store_true", help="use a tiny model built in code")
    parser.add_argument("--data", help="an SFT export JSONL (default: the demo outputs)")
    parser.add_argument("--keep-layers", type=int, default=10)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the median is reported")
    parser.add_argument("--threads", type=int, help="torch threads (1 gives steadier CPU-time figures when shared)")
    parser.add_argument("--only", nargs="*", choices=ROWS, help="rows to run (default: all)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        work = Path(tmp)
        student, data, rows, info = prepare(args, work)
        print(f"student: {info['student_params']:,} params (layers {info['kept_layers']}), "
              f"teacher {info['teacher_params']:,}")
        results = measure(args, work, student, data, rows)
    found, found_cpu = ratios(results), ratios(results, "tokens_per_cpu_second")
    for key, value in found.items():
        print(f"{key:40s} {value:5.2f}x wall   {found_cpu[key]:5.2f}x cpu")
    report = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "model": info, "rows": results,
              "ratios": found, "ratios_cpu_time": found_cpu, "torch_threads": torch.get_num_threads(),
              "load_average": os.getloadavg(), "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
