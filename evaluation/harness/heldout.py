"""Held-out curated items -> lm-eval task YAML (a scored generation task and a
perplexity task), written into a folder that ``TaskManager(include_path=...)`` or
the bare ``lm_eval --include_path`` CLI can load.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .config import HELDOUT_GEN_TASK, HELDOUT_PPL_TASK, HarnessError

DATA_FILE = "heldout.jsonl"
METRICS_MODULE = "distillery_metrics"


@dataclass
class HeldoutDoc:
    index: int
    id: str | None
    system: str
    prompt: str  # the user turn, for chat-template prompting
    plain_prompt: str  # a "User:/Assistant:" transcript, for prompting without one
    reference: str


def _transcript(turns: list[dict]) -> list[str]:
    names = {"user": "User", "assistant": "Assistant"}
    return [f"{names[t['role']]}: {t['content']}" for t in turns]


def parse_sft_line(line: str, index: int) -> HeldoutDoc:
    """One export line: ``{"messages": [...], "id"?}``, last message the reference."""
    try:
        item = json.loads(line)
        messages = item["messages"]
    except (ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"held-out line {index + 1}: not an sft record ({exc})") from exc
    if len(messages) < 2 or messages[-1].get("role") != "assistant":
        raise HarnessError(f"held-out line {index + 1}: the last message must be the assistant reference")
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages[:-1] if m["role"] in ("user", "assistant")]
    if not turns or turns[-1]["role"] != "user":
        raise HarnessError(f"held-out line {index + 1}: the reference must answer a user message")
    # lm-eval builds one user turn per document, so earlier turns of a multi-turn
    # conversation travel inside it as a transcript.
    history = _transcript(turns[:-1])
    prompt = "\n".join([*history, f"User: {turns[-1]['content']}"]) if history else turns[-1]["content"]
    plain = "\n".join(_transcript(turns)) + "\nAssistant:"
    if system:
        plain = f"{system}\n\n{plain}"
    raw_id = item.get("id")
    return HeldoutDoc(
        index=index,
        id=None if raw_id is None else str(raw_id),
        system=system,
        prompt=prompt,
        plain_prompt=plain,
        reference=messages[-1]["content"].strip(),
    )


def read_heldout(path: Path | str) -> list[HeldoutDoc]:
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    docs = [parse_sft_line(line, i) for i, line in enumerate(lines)]
    if not docs:
        raise HarnessError(f"held-out file {path} has no items")
    return docs


def _yaml_str(value: str) -> str:
    # A JSON string is a valid double-quoted YAML scalar, escapes included.
    return json.dumps(value)


def _common_yaml(task: str, output_type: str, data_file: Path, chat: bool) -> str:
    return "\n".join(
        [
            f"task: {task}",
            "dataset_path: json",
            "dataset_kwargs:",
            "  data_files:",
            f"    test: {_yaml_str(str(data_file))}",
            "test_split: test",
            "fewshot_split: test",
            f"output_type: {output_type}",
            # With a chat template the system message goes in as the system turn.
            *(["description: system"] if chat else []),
            f"doc_to_text: {'prompt' if chat else 'plain_prompt'}",
            "doc_to_target: reference",
            f"target_delimiter: {_yaml_str('' if chat else ' ')}",
            f"fewshot_delimiter: {_yaml_str(chr(10) * 2)}",
        ]
    )


def _gen_yaml(data_file: Path, chat: bool, max_gen_toks: int) -> str:
    until = [] if chat else ["\nUser:"]  # the model's end-of-turn token is added by lm-eval
    return _common_yaml(HELDOUT_GEN_TASK, "generate_until", data_file, chat) + f"""
generation_kwargs:
  until: {json.dumps(until)}
  max_gen_toks: {int(max_gen_toks)}
  do_sample: false
  temperature: 0.0
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: false
    ignore_punctuation: false
    regexes_to_ignore: ["^\\\\s+", "\\\\s+$"]
  - metric: !function {METRICS_MODULE}.rougeL
    aggregation: mean
    higher_is_better: true
  - metric: chrf
    aggregation: chrf
    higher_is_better: true
metadata:
  version: 1.0
"""


def _ppl_yaml(data_file: Path, chat: bool) -> str:
    return _common_yaml(HELDOUT_PPL_TASK, "loglikelihood", data_file, chat) + f"""
process_results: !function {METRICS_MODULE}.perplexity_results
metric_list:
  - metric: word_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
  - metric: byte_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
  - metric: bits_per_byte
    aggregation: bits_per_byte
    higher_is_better: false
metadata:
  version: 1.0
"""


def write_heldout_tasks(
    source: Path | str, folder: Path | str, *, chat_template: bool, max_gen_toks: int = 256
) -> list[HeldoutDoc]:
    """Write the data file, both task YAMLs and the metric module into ``folder``.

    The prompt field the tasks read depends on ``chat_template`` (it must match the
    ``apply_chat_template`` option of the run): with it, the bare user turn, which
    lm-eval wraps in the model's template; without it, a plain transcript.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    docs = read_heldout(source)
    data_file = folder / DATA_FILE
    with data_file.open("w", encoding="utf-8") as out:
        for doc in docs:
            out.write(json.dumps(doc.__dict__, ensure_ascii=False) + "\n")
    (folder / f"{HELDOUT_GEN_TASK}.yaml").write_text(_gen_yaml(data_file, chat_template, max_gen_toks))
    (folder / f"{HELDOUT_PPL_TASK}.yaml").write_text(_ppl_yaml(data_file, chat_template))
    shutil.copyfile(Path(__file__).with_name("task_functions.py"), folder / f"{METRICS_MODULE}.py")
    return docs
