"""Which of the teacher's layers a derived student keeps: measured, not guessed.

Cutting 20 of SmolLM2's 30 layers evenly leaves a student at cross-entropy 14.5 on the teacher's replies, worse
than uniform guessing (ln 49152 = 10.8); "first 7 + last 3" starts at 10.9 (FACTS). So the layers are chosen by
measurement on calibration data (replies from the training file):

1. Block Influence (ShortGPT, Men et al. 2024): for each layer, 1 - cos(input, output) of its hidden states,
   averaged over reply tokens, from one teacher forward pass. A layer that barely turns its input matters little.
2. Candidate layer sets: the K most influential layers; the same with the first and last layer forced in; the
   best contiguous cut (keep a head and a tail, drop one contiguous middle block; Minitron-style depth pruning
   finds the redundant layers contiguous and deep); and evenly spaced layers as the old baseline.
3. Each candidate student is built (weights copied, ~1 s) and its starting cross-entropy on the calibration
   replies measured; the lowest wins. The report keeps every candidate's loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from training.ml.data import IGNORE, padded_batches


@dataclass
class LayerSelection:
    kept: list[int]
    strategy: str  # the winning candidate's name
    starting_loss: float  # the chosen student's cross-entropy on the calibration replies
    teacher_loss: float
    block_influence: list[float]
    candidates: list[dict[str, Any]] = field(default_factory=list)  # name, layers, loss
    calibration_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decoder_layers(model: Any) -> Any:
    base = getattr(model, "model", model)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError("block importance needs a decoder with model.layers (Llama, Qwen, Mistral, ...)")
    return layers


def block_influence(model: Any, batches: list[tuple]) -> tuple[list[float], int]:
    """Per layer, the reply-token mean of 1 - cos(layer input, layer output); and the token count."""
    import torch

    layers = _decoder_layers(model)
    sums = [0.0] * len(layers)
    state: dict[str, Any] = {}

    def hook(index: int):
        def run(module, args, kwargs, output):
            hidden_in = args[0] if args else kwargs["hidden_states"]
            hidden_out = output[0] if isinstance(output, tuple) else output
            keep = state["keep"]
            cos = torch.nn.functional.cosine_similarity(hidden_in[keep].float(), hidden_out[keep].float(), dim=-1)
            sums[index] += float((1.0 - cos).sum())

        return run

    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    tokens = 0
    try:
        with torch.inference_mode():
            for _, ids, labels, mask in batches:
                state["keep"] = labels != IGNORE
                tokens += int(state["keep"].sum())
                model(input_ids=ids, attention_mask=mask, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return [s / max(tokens, 1) for s in sums], tokens


def reply_loss(model: Any, batches: list[tuple]) -> float:
    """Mean cross-entropy on the reply tokens (teacher forcing)."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.inference_mode():
        for _, ids, labels, mask in batches:
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
            targets = labels[:, 1:]
            keep = targets != IGNORE
            total += float(F.cross_entropy(logits[keep].float(), targets[keep], reduction="sum"))
            count += int(keep.sum())
    return total / max(count, 1)


def candidate_sets(influence: list[float], keep: int) -> dict[str, list[int]]:
    from training.ml.student import evenly_spaced_layers

    total = len(influence)
    ranked = sorted(range(total), key=lambda i: influence[i], reverse=True)
    candidates = {
        "block_influence": sorted(ranked[:keep]),
        "evenly_spaced": evenly_spaced_layers(total, keep),
    }
    if keep >= 2:
        ends = {0, total - 1}
        inner = [i for i in ranked if i not in ends][: keep - 2]
        candidates["block_influence_with_ends"] = sorted(ends | set(inner))
        # One contiguous block removed: choose the block of least summed influence among all head/tail splits.
        drop = total - keep
        best = min(range(1, total - drop), key=lambda start: sum(influence[start : start + drop]), default=None)
        if best is not None:
            candidates["contiguous_cut"] = [i for i in range(total) if not best <= i < best + drop]
    unique: dict[str, list[int]] = {}
    for name, layers in candidates.items():
        if layers not in unique.values():
            unique[name] = layers
    return unique


def select_layers(
    teacher: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    keep: int,
    *,
    max_examples: int = 64,
    max_len: int = 512,
    batch_size: int = 8,
) -> LayerSelection:
    """Measure block influence on `rows` (export rows), try the candidate sets, keep the lowest starting loss."""
    from training.ml.data import tokenize_sft
    from training.ml.student import derive_student

    total = teacher.config.num_hidden_layers
    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    examples, _ = tokenize_sft(rows[:max_examples], tokenizer, max_len)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = list(padded_batches(examples, batch_size, pad_id))
    teacher.eval()
    influence, tokens = block_influence(teacher, batches)
    teacher_loss = reply_loss(teacher, batches)
    scored = []
    for name, layers in candidate_sets(influence, keep).items():
        student, _ = derive_student(teacher, keep, layers=layers)
        scored.append({"name": name, "layers": layers, "loss": round(reply_loss(student.eval(), batches), 4)})
        del student
    best = min(scored, key=lambda c: c["loss"])
    return LayerSelection(
        kept=best["layers"],
        strategy=best["name"],
        starting_loss=best["loss"],
        teacher_loss=round(teacher_loss, 4),
        block_influence=[round(v, 6) for v in influence],
        candidates=scored,
        calibration_tokens=tokens,
    )
