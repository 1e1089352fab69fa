"""Tiny teacher folders and exported JSONL files for the training tests (no database needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tiny import save_tiny_model

SFT_ROWS = [
    {"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "It is 4."}]},
    {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
        ]
    },
    {"messages": [{"role": "user", "content": "What is 3 + 5?"}, {"role": "assistant", "content": "It is 8."}]},
    {
        "messages": [
            {"role": "user", "content": "Rewrite this politely: please send the report today."},
            {"role": "assistant", "content": "Please send the report today. Thank you!"},
        ]
    },
]

DPO_ROWS = [
    {
        "prompt": [{"role": "user", "content": "What is 2 + 2?"}],
        "chosen": [{"role": "assistant", "content": "It is 4."}],
        "rejected": [{"role": "assistant", "content": "It is 8."}],
    },
    {
        "prompt": [{"role": "user", "content": "What is the capital of France?"}],
        "chosen": [{"role": "assistant", "content": "The capital of France is Paris."}],
        "rejected": [{"role": "assistant", "content": "The quick brown fox."}],
    },
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """A 4-layer tiny Llama with a ChatML tokenizer (pad = eos), like SmolLM2 in miniature."""
    return save_tiny_model(tmp_path_factory.mktemp("teacher"), layers=4, hidden=64)


@pytest.fixture(scope="session")
def sft_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "sft.jsonl", SFT_ROWS)


@pytest.fixture(scope="session")
def dpo_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "dpo.jsonl", DPO_ROWS)


@pytest.fixture
def make_config(tiny_teacher, sft_file, tmp_path):
    """A TrainConfig for a fast run: a 2-layer student derived from the tiny teacher, overfitting 4 rows."""
    from training.ml.config import TrainConfig

    def make(**overrides) -> TrainConfig:
        values = {
            "method": "sft",
            "student_source": "derive",
            "teacher_path": str(tiny_teacher),
            "keep_layers": 2,
            "train_file": str(sft_file),
            "output_dir": str(tmp_path / "run"),
            "max_steps": 20,
            "learning_rate": 3e-3,
            "per_device_batch_size": 2,
            "logging_steps": 5,
            "save_steps": 10,
            "warmup_ratio": 0.0,
            "seed": 7,
        }
        values.update(overrides)
        return TrainConfig(**values)

    return make


# --- database fixtures: a frozen version and a local teacher -------------------------------------------------


def make_version(project, rows: list[dict] = SFT_ROWS, *, rejected: bool = True):
    """A frozen DatasetVersion holding the given conversations as training rows (and one held-out copy)."""
    from curation.models import DatasetRow, DatasetVersion

    number = DatasetVersion.objects.filter(project=project).count() + 1
    version = DatasetVersion.objects.create(project=project, number=number, content_hash=f"{number:064x}")
    frozen = []
    for position, row in enumerate(rows + rows[:1]):
        messages = row["messages"]
        frozen.append(DatasetRow(
            version=version, position=position, prompt_id=position + 1, messages=messages[:-1],
            split=DatasetRow.Split.HELDOUT if position == len(rows) else DatasetRow.Split.TRAIN,
            response=messages[-1]["content"], original=messages[-1]["content"],
            rejected=["The quick brown fox."] if rejected else [],
        ))
    DatasetRow.objects.bulk_create(frozen)
    version.row_count, version.heldout_count, version.train_count = len(frozen), 1, len(rows)
    version.pair_count = len(frozen) if rejected else 0
    version.save()
    return version


@pytest.fixture
def version(project):
    return make_version(project)


@pytest.fixture
def local_teacher(project, tiny_teacher):
    from curation.models import Teacher

    return Teacher.objects.create(project=project, name="tiny", kind=Teacher.Kind.LOCAL, model_path=str(tiny_teacher))


FAST = {"max_steps": 30, "learning_rate": 3e-3, "per_device_batch_size": 2, "logging_steps": 2, "save_steps": 10,
        "warmup_ratio": 0.0}
