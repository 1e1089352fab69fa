"""Reading the curation exports and turning them into token batches.

SFT/KD rows: {"messages": [...]} whose last message is the curated assistant reply.
DPO rows:    {"prompt": [...], "chosen": [{"role": "assistant", ...}], "rejected": [{"role": "assistant", ...}]}.

Labels cover the reply only. The prompt length comes from rendering the conversation without its last message;
the pad id is never used to mask, because pad = eos in SmolLM2 and the reply's end-of-turn token must be learned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORE = -100
ROLES = {"system", "user", "assistant"}


@dataclass
class DataStats:
    rows: int = 0
    examples: int = 0
    tokens: int = 0
    target_tokens: int = 0
    truncated: int = 0
    dropped: int = 0  # nothing of the reply left after truncation
    notes: list[str] = field(default_factory=list)


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc
    if not rows:
        raise ValueError(f"{path} holds no rows")
    return rows


def _check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: expected a non-empty list of messages")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"{where}: each message needs a role in {sorted(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: each message needs text content")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def sft_messages(row: dict[str, Any], number: int) -> list[dict[str, str]]:
    """The conversation to imitate; a preference row counts as its prompt plus the chosen reply."""
    where = f"row {number}"
    if "messages" in row:
        messages = _check_messages(row["messages"], where)
    elif "prompt" in row and "chosen" in row:
        messages = _check_messages(row["prompt"], where) + _check_messages(row["chosen"], where)
    else:
        raise ValueError(f"{where}: expected 'messages' (SFT export) or 'prompt'/'chosen' (DPO export)")
    if messages[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the last message must be the assistant reply")
    return messages


def dpo_record(row: dict[str, Any], number: int) -> dict[str, list[dict[str, str]]]:
    where = f"row {number}"
    if not all(key in row for key in ("prompt", "chosen", "rejected")):
        raise ValueError(f"{where}: DPO needs 'prompt', 'chosen' and 'rejected' (export the version for DPO)")
    return {
        "prompt": _check_messages(row["prompt"], where),
        "chosen": _check_messages(row["chosen"], where),
        "rejected": _check_messages(row["rejected"], where),
    }


def _ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], *, generation_prompt: bool) -> list[int]:
    return list(
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=False
        )
    )


def tokenize_sft(
    rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_len: int
) -> tuple[list[dict[str, list[int]]], DataStats]:
    """input_ids + labels per row, labels -100 on the prompt; rows with no reply left are dropped and counted."""
    stats = DataStats(rows=len(rows))
    examples = []
    for number, row in enumerate(rows, start=1):
        messages = sft_messages(row, number)
        prompt = _ids(tokenizer, messages[:-1], generation_prompt=True)
        full = _ids(tokenizer, messages, generation_prompt=False)
        # Templates normally render the prompt as a prefix of the whole; if one does not, the shared prefix
        # is the prompt and everything after it is learned.
        cut = 0
        for a, b in zip(prompt, full, strict=False):
            if a != b:
                break
            cut += 1
        if len(full) > max_len:
            stats.truncated += 1
            full = full[:max_len]
        labels = [IGNORE] * min(cut, len(full)) + full[cut:]
        targets = sum(1 for label in labels[1:] if label != IGNORE)
        if targets == 0:
            stats.dropped += 1
            continue
        # row: the line among the file's rows, the key of the offline teacher logits (training.ml.logit_cache)
        examples.append({"input_ids": full, "labels": labels, "row": number - 1})
        stats.tokens += len(full)
        stats.target_tokens += targets
    stats.examples = len(examples)
    if not examples:
        raise ValueError("no example has reply tokens within max_seq_len")
    return examples, stats


class ListDataset:
    """A map-style dataset over tokenized examples; the Trainer needs only len() and indexing."""

    def __init__(self, examples: list[dict[str, list[int]]]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.examples[index]


@dataclass
class CausalLMCollator:
    """Right padding with an attention mask, or padding-free: the batch as one flat row.

    Padding-free rows carry position_ids restarting at 0 for each example and no attention mask; transformers
    then builds a block-diagonal causal mask from the positions, so examples never attend to each other and
    no compute is spent on pad tokens.
    """

    pad_token_id: int
    padding_free: bool = False

    def __call__(self, examples: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        import torch

        if self.padding_free:
            ids: list[int] = []
            labels: list[int] = []
            positions: list[int] = []
            for example in examples:
                ids += example["input_ids"]
                # The first token of an example must not be predicted from the previous example's last one.
                labels += [IGNORE] + example["labels"][1:]
                positions += list(range(len(example["input_ids"])))
            return {
                "input_ids": torch.tensor([ids]),
                "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([positions]),
            }
        width = max(len(example["input_ids"]) for example in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        label_t = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = torch.tensor(example["input_ids"])
            label_t[row, :n] = torch.tensor(example["labels"])
            mask[row, :n] = 1
        return {"input_ids": input_ids, "labels": label_t, "attention_mask": mask}


def padded_batches(examples: list[dict[str, list[int]]], batch_size: int, pad_id: int):
    """(start, input_ids, labels, attention_mask) for forward-only passes over examples, right padded."""
    collate = CausalLMCollator(pad_id)
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size])
        yield start, batch["input_ids"], batch["labels"], batch["attention_mask"]


def load_sft_dataset(
    path: Path | str, tokenizer: PreTrainedTokenizerBase, max_len: int
) -> tuple[ListDataset, DataStats]:
    examples, stats = tokenize_sft(read_jsonl(path), tokenizer, max_len)
    return ListDataset(examples), stats


def load_dpo_dataset(path: Path | str) -> tuple[Any, DataStats]:
    """A datasets.Dataset in TRL's conversational preference format; TRL renders and tokenizes it."""
    from datasets import Dataset

    rows = read_jsonl(path)
    records = [dpo_record(row, number) for number, row in enumerate(rows, start=1)]
    stats = DataStats(rows=len(rows), examples=len(records))
    return Dataset.from_list(records), stats
