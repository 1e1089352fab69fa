"""Reading exports: reply-only labels (pad = eos must still be learned), collators, row validation."""

from __future__ import annotations

import json

import pytest
import torch

from tests.training.conftest import DPO_ROWS, SFT_ROWS, write_jsonl
from training.ml.data import IGNORE, CausalLMCollator, load_dpo_dataset, read_jsonl, tokenize_sft
from training.ml.student import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_teacher):
    return load_tokenizer(tiny_teacher)


def test_labels_cover_the_reply_and_its_end_of_turn_token(tokenizer):
    examples, stats = tokenize_sft(SFT_ROWS[:1], tokenizer, max_len=256)
    ids, labels = examples[0]["input_ids"], examples[0]["labels"]
    learned = [token for token in labels if token != IGNORE]

    assert tokenizer.decode(learned) == "It is 4.<|im_end|>\n"
    # pad = eos: masking by pad id would have dropped this token.
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert tokenizer.eos_token_id in learned
    prompt_len = labels.index(learned[0])
    assert tokenizer.decode(ids[:prompt_len]).endswith("<|im_start|>assistant\n")
    assert stats.examples == 1 and stats.target_tokens == len(learned)


def test_truncation_keeps_the_start_and_drops_rows_with_no_reply_left(tokenizer):
    whole, _ = tokenize_sft(SFT_ROWS, tokenizer, max_len=1024)
    prompt_lengths = [example["labels"].count(IGNORE) for example in whole]
    limit = min(prompt_lengths) + 2  # the shortest prompt keeps two reply tokens, the longest keeps none

    examples, stats = tokenize_sft(SFT_ROWS, tokenizer, max_len=limit)
    assert stats.truncated == len(SFT_ROWS)
    assert 1 <= stats.examples < len(SFT_ROWS)
    assert stats.dropped + stats.examples == len(SFT_ROWS)
    assert all(len(example["input_ids"]) == limit for example in examples)


def test_preference_rows_train_sft_on_the_chosen_reply(tokenizer):
    examples, _ = tokenize_sft(DPO_ROWS[:1], tokenizer, max_len=256)
    learned = [token for token in examples[0]["labels"] if token != IGNORE]
    assert tokenizer.decode(learned).startswith("It is 4.")


@pytest.mark.parametrize(
    "row, message",
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "last message must be the assistant"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"text": "hi"}, "expected 'messages'"),
    ],
)
def test_bad_rows_are_reported_with_their_number(tokenizer, row, message):
    with pytest.raises(ValueError, match=message):
        tokenize_sft([SFT_ROWS[0], row], tokenizer, max_len=64)
    with pytest.raises(ValueError, match="row 2"):
        tokenize_sft([SFT_ROWS[0], row], tokenizer, max_len=64)


def test_read_jsonl_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(SFT_ROWS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_jsonl(path)


def test_padded_and_padding_free_batches_hold_the_same_tokens(tokenizer):
    examples, _ = tokenize_sft(SFT_ROWS[:2], tokenizer, max_len=256)
    padded = CausalLMCollator(tokenizer.pad_token_id)(examples)
    flat = CausalLMCollator(tokenizer.pad_token_id, padding_free=True)(examples)
    lengths = [len(example["input_ids"]) for example in examples]

    assert padded["attention_mask"].sum().item() == sum(lengths) == flat["input_ids"].numel()
    assert "attention_mask" not in flat
    assert flat["position_ids"][0, lengths[0]].item() == 0  # positions restart at each example
    assert flat["labels"][0, lengths[0]].item() == IGNORE  # never predict across the boundary
    assert torch.equal(padded["input_ids"][padded["attention_mask"].bool()], flat["input_ids"][0])


def test_dpo_rows_need_chosen_and_rejected(tmp_path):
    dataset, stats = load_dpo_dataset(write_jsonl(tmp_path / "dpo.jsonl", DPO_ROWS))
    assert len(dataset) == stats.examples == 2
    assert dataset[0]["chosen"][0]["role"] == "assistant"
    with pytest.raises(ValueError, match="DPO needs"):
        load_dpo_dataset(write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS))
