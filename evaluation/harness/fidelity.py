"""Teacher-forced fidelity of a student to its teacher on held-out replies.

Both models read the same conversations (the reply tokens are the teacher's own, or curated ones); at every
reply position we compare their next-token distributions: KL(teacher || student), whether their top-1 tokens
agree, and the student's cross-entropy on the reply. Forward passes only, so a model takes seconds on a few
thousand tokens, and the numbers do not depend on sampling or on a noisy reference text.

Aggregates are token-weighted means over all reply tokens; their standard error treats each example as one
cluster (ratio estimator), because tokens of one reply are not independent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.ml.data import IGNORE, padded_batches, read_jsonl, tokenize_sft

METRICS = ("kl", "top1", "ce")


@dataclass
class ExampleFidelity:
    index: int
    tokens: int
    kl: float  # mean over the reply's tokens
    top1: float
    ce: float
    teacher_ce: float


@dataclass
class Fidelity:
    examples: int
    tokens: int
    kl: float
    kl_stderr: float | None
    top1: float
    top1_stderr: float | None
    ce: float
    ce_stderr: float | None
    teacher_ce: float
    seconds: float = 0.0
    per_example: list[ExampleFidelity] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k != "per_example"}


def clustered_mean(sums: list[float], counts: list[int]) -> tuple[float, float | None]:
    """Token-weighted mean of per-example sums, and its cluster-robust standard error (ratio estimator)."""
    n = len(sums)
    total = sum(counts)
    if not n or not total:
        raise ValueError("no reply tokens to measure")
    mean = sum(sums) / total
    if n < 2:
        return mean, None
    mean_count = total / n
    spread = sum((s - mean * c) ** 2 for s, c in zip(sums, counts, strict=True)) / (n - 1)
    return mean, math.sqrt(spread / n) / mean_count


def token_stats(student_logits: Any, teacher_logits: Any, targets: Any) -> dict[str, Any]:
    """Per-token KL(teacher || student), top-1 agreement, student and teacher cross-entropy (rows = tokens)."""
    import torch.nn.functional as F

    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])  # heads may be padded past the tokenizer
    s = F.log_softmax(student_logits[:, :vocab].float(), dim=-1)
    t = F.log_softmax(teacher_logits[:, :vocab].float(), dim=-1)
    return {
        "kl": (t.exp() * (t - s)).sum(-1),
        "top1": (s.argmax(-1) == t.argmax(-1)).float(),
        "ce": -s.gather(1, targets[:, None]).squeeze(1),
        "teacher_ce": -t.gather(1, targets[:, None]).squeeze(1),
    }


def measure_fidelity(
    student: Any,
    teacher: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    *,
    batch_size: int = 8,
    max_len: int = 1024,
) -> Fidelity:
    """Fidelity of `student` to `teacher` on the replies of `rows` (curation "sft" export rows)."""
    import time

    import torch

    started = time.perf_counter()
    examples, _ = tokenize_sft(rows, tokenizer, max_len)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    per_example: list[ExampleFidelity] = []
    sums: dict[str, list[float]] = {k: [] for k in (*METRICS, "teacher_ce")}
    counts: list[int] = []
    student.eval()
    teacher.eval()
    with torch.inference_mode():
        for start, ids, labels, mask in padded_batches(examples, batch_size, pad_id):
            s_logits = student(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
            t_logits = teacher(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
            targets = labels[:, 1:]
            for row in range(ids.shape[0]):
                keep = targets[row] != IGNORE
                stats = token_stats(s_logits[row][keep], t_logits[row][keep], targets[row][keep])
                n = int(keep.sum())
                counts.append(n)
                for key, values in stats.items():
                    sums[key].append(float(values.double().sum()))
                per_example.append(
                    ExampleFidelity(
                        index=start + row,
                        tokens=n,
                        **{key: round(sums[key][-1] / n, 6) for key in stats},
                    )
                )
    aggregates = {key: clustered_mean(sums[key], counts) for key in sums}
    return Fidelity(
        examples=len(per_example),
        tokens=sum(counts),
        kl=aggregates["kl"][0],
        kl_stderr=aggregates["kl"][1],
        top1=aggregates["top1"][0],
        top1_stderr=aggregates["top1"][1],
        ce=aggregates["ce"][0],
        ce_stderr=aggregates["ce"][1],
        teacher_ce=aggregates["teacher_ce"][0],
        seconds=round(time.perf_counter() - started, 3),
        per_example=per_example,
    )


def measure_fidelity_files(
    student_dir: Path | str, teacher_dir: Path | str, data_file: Path | str, *, batch_size: int = 8
) -> Fidelity:
    """Load both models from folders (fp32) and measure on an export file; the student's tokenizer is used."""
    from training.ml.student import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(student_dir)
    if load_tokenizer(teacher_dir).get_vocab() != tokenizer.get_vocab():
        raise ValueError("fidelity needs the teacher and the student to share one tokenizer")
    student = load_causal_lm(student_dir)
    teacher = load_causal_lm(teacher_dir)
    return measure_fidelity(student, teacher, tokenizer, read_jsonl(data_file), batch_size=batch_size)


@dataclass
class FidelityRunConfig:
    """One child process: the teacher loaded once, every local student compared with it, every model timed."""

    teacher: Any  # ModelSpec
    students: list[Any]  # ModelSpec
    data_file: str  # held-out rows in the curation "sft" export format
    output_dir: str
    batch_size: int = 8
    speed_batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    speed_new_tokens: int = 64
    speed_repeats: int = 3
    offline: bool = True

    def to_json(self) -> str:
        import json

        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FidelityRunConfig:
        from .config import ModelSpec

        data = dict(data)
        data["teacher"] = ModelSpec(**data["teacher"])
        data["students"] = [ModelSpec(**s) for s in data["students"]]
        return cls(**data)


def load_spec(spec: Any) -> tuple[Any, Any]:
    """(model, tokenizer) for a local ModelSpec (a saved folder, or a .gguf file dequantized to float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(spec.path)
    folder, extra = (path.parent, {"gguf_file": path.name}) if spec.kind == "gguf" else (path, {})
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra).eval()
    return model, tokenizer


def run_fidelity(config: FidelityRunConfig, on_progress: Any = None) -> dict[str, Any]:
    """Fidelity of each student to the teacher, and fixed-length speed of every model; writes result.json."""
    import json

    from .speed import measure_speed, render_prompts

    report = on_progress or (lambda fraction, message: None)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_jsonl(config.data_file)
    report(0.02, f"loading {config.teacher.label}")
    teacher, tokenizer = load_spec(config.teacher)
    prompts = render_prompts(tokenizer, [row["messages"][:-1] for row in rows])
    batches = tuple(config.speed_batch_sizes)

    def speed_of(model: Any, tok: Any) -> dict[str, Any]:
        return measure_speed(model, tok, prompts, batch_sizes=batches, new_tokens=config.speed_new_tokens,
                             repeats=config.speed_repeats).to_dict()

    result: dict[str, Any] = {"teacher": config.teacher.label, "models": {}, "notes": []}
    steps = len(config.students) + 1
    report(0.05, f"timing {config.teacher.label}")
    result["models"][config.teacher.label] = {"role": "teacher", "speed": speed_of(teacher, tokenizer)}
    for n, spec in enumerate(config.students, start=1):
        report(0.05 + 0.9 * n / steps, f"fidelity of {spec.label}")
        student, student_tokenizer = load_spec(spec)
        entry: dict[str, Any] = {"role": "student"}
        if student_tokenizer.get_vocab() != tokenizer.get_vocab():
            result["notes"].append(f"{spec.label} has another tokenizer than the teacher: no token-level fidelity")
        else:
            fidelity = measure_fidelity(student, teacher, tokenizer, rows, batch_size=config.batch_size)
            entry["fidelity"] = fidelity.summary()
            entry["per_example"] = [asdict(e) for e in fidelity.per_example]
        entry["speed"] = speed_of(student, student_tokenizer)
        result["models"][spec.label] = entry
        del student
    (out / "result.json").write_text(json.dumps(result, indent=2))
    report(1.0, "done")
    return result
