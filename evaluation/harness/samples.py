"""lm-eval per-sample logs -> our per-sample records (one JSON list per task).

A record holds what a reviewer needs side by side: which held-out item it was, the
prompt, the reference, the model's response and one number per metric. Corpus-level
metrics (chrF) log a (reference, prediction) pair per sample; a sentence-level score
is computed for the record so items can be ranked, while the task's headline value
stays lm-eval's corpus figure.
"""

from __future__ import annotations

import math
from typing import Any

PAIR_METRICS = {"word_perplexity", "byte_perplexity", "bits_per_byte"}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _first_context(arguments: Any) -> str:
    if isinstance(arguments, dict):  # lm-eval >= 0.4.9 logs {"gen_args_0": {"arg_0": ...}}
        first = next(iter(arguments.values()), {})
        return str(first.get("arg_0", "")) if isinstance(first, dict) else str(first)
    if isinstance(arguments, (list, tuple)) and arguments:
        return str(arguments[0][0] if isinstance(arguments[0], (list, tuple)) else arguments[0])
    return ""


def _response(sample: dict) -> str | None:
    filtered = sample.get("filtered_resps")
    if isinstance(filtered, list) and filtered and isinstance(filtered[0], str):
        return filtered[0]
    return None  # loglikelihood requests have no text response


def _metric_values(sample: dict) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for name in sample.get("metrics", []):
        value = sample.get(name)
        if name in PAIR_METRICS and isinstance(value, (list, tuple)):
            loglikelihood, weight = float(value[0]), float(value[1])
            per_unit = -loglikelihood / weight
            values[name] = per_unit / math.log(2) if name == "bits_per_byte" else math.exp(min(per_unit, 700))
            values["loglikelihood"] = loglikelihood
        elif name in ("chrf", "chrf++") and isinstance(value, (list, tuple)):
            from sacrebleu.metrics import CHRF

            metric = CHRF(word_order=2 if name == "chrf++" else 0)
            values[name] = metric.sentence_score(str(value[1]), [str(value[0])]).score
        else:
            values[name] = _number(value)
    return values


def normalize_samples(samples: list[dict]) -> list[dict]:
    records = []
    for sample in samples:
        doc = sample.get("doc")
        # Held-out docs (written by heldout.py) carry the curation item id and the bare prompt.
        held_out = isinstance(doc, dict) and "plain_prompt" in doc
        context = _first_context(sample.get("arguments"))
        records.append(
            {
                "doc_id": sample.get("doc_id"),
                "item_id": doc.get("id") if held_out else None,
                "prompt": doc["prompt"] if held_out else context,
                "context": context,
                "target": str(sample.get("target", "")),
                "response": _response(sample),
                "metrics": _metric_values(sample),
            }
        )
    return sorted(records, key=lambda r: (r["doc_id"] is None, r["doc_id"]))
