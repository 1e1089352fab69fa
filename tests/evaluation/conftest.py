"""Tiny fitted models and a held-out file, built once per session (see helpers.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.evaluation.helpers import save_fitted_model, sft_records, write_sft_jsonl


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    """A teacher fitted on all six held-out items and a student fitted on the first three."""
    root = tmp_path_factory.mktemp("tiny_pair")
    records = sft_records()
    return SimpleNamespace(
        teacher=save_fitted_model(root / "teacher", records),
        student=save_fitted_model(root / "student", records[:3], seed=1),
        heldout=write_sft_jsonl(root / "heldout.jsonl", records),
        records=records,
    )
