"""Metric functions referenced as ``!function distillery_metrics.<name>`` from the
held-out task YAML.

This file is copied next to the YAML as ``distillery_metrics.py`` so the task folder
is self-contained: the bare ``lm_eval`` CLI runs it without our package on the path.
Keep it free of imports from this project.
"""

from __future__ import annotations

import re

_scorer = None


def rougeL(references: list[str], predictions: list[str]) -> float:
    """ROUGE-L F1 of one prediction against one reference (rouge-score, local).

    lm-eval's own ``rouge`` name goes through HF ``evaluate`` and the hub, hence this.
    """
    global _scorer
    if _scorer is None:
        from rouge_score import rouge_scorer

        _scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return float(_scorer.score(references[0], predictions[0])["rougeL"].fmeasure)


def perplexity_results(doc: dict, results: list) -> dict:
    """Per-document loglikelihood weighted by the reference's words and bytes.

    Word and byte normalisation (as lm-eval's wikitext does) keeps teacher and student
    comparable even when their tokenizers differ; a per-token perplexity would not.
    """
    loglikelihood = float(results[0][0])
    reference = doc["reference"]
    words = max(1, len(re.split(r"\s+", reference.strip())))
    size = max(1, len(reference.encode("utf-8")))
    return {
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, size),
        "bits_per_byte": (loglikelihood, size),
    }
