"""Held-out curated items -> lm-eval task YAML (no model, no database)."""

from __future__ import annotations

import json

import pytest
import yaml

from evaluation.harness import HarnessError, read_heldout, write_heldout_tasks
from evaluation.harness.heldout import parse_sft_line
from tests.evaluation.helpers import SYSTEM, sft_records, write_sft_jsonl


def _load_yaml(path):
    # lm-eval's !function tag is resolved by lm-eval; here we only read the structure.
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")
    return yaml.load(path.read_text(), Loader=Loader)


def test_docs_keep_ids_system_prompt_and_reference(tmp_path):
    docs = read_heldout(write_sft_jsonl(tmp_path / "h.jsonl", sft_records()))
    assert [d.id for d in docs] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert docs[0].system == SYSTEM and docs[1].system == ""
    assert docs[0].prompt == "What is 2 + 2?"
    assert docs[0].reference == "It is 4."
    assert docs[0].plain_prompt == f"{SYSTEM}\n\nUser: What is 2 + 2?\nAssistant:"


def test_multi_turn_history_travels_in_the_user_turn():
    line = json.dumps({"messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": " It is 4. "},
    ]})
    doc = parse_sft_line(line, 0)
    assert doc.id is None
    assert doc.prompt == "User: Hi\nAssistant: Hello!\nUser: What is 2 + 2?"
    assert doc.plain_prompt.endswith("User: What is 2 + 2?\nAssistant:")
    assert doc.reference == "It is 4."


@pytest.mark.parametrize("record, message", [
    ({"messages": [{"role": "user", "content": "Q"}]}, "last message must be the assistant"),
    ({"messages": [{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]}, "must answer a user"),
    ({"prompt": "Q"}, "not an sft record"),
])
def test_malformed_lines_are_refused_with_their_line_number(record, message):
    with pytest.raises(HarnessError, match=message) as exc:
        parse_sft_line(json.dumps(record), 4)
    assert "line 5" in str(exc.value)


def test_chat_template_tasks(tmp_path):
    source = write_sft_jsonl(tmp_path / "h.jsonl", sft_records())
    write_heldout_tasks(source, tmp_path / "tasks", chat_template=True, max_gen_toks=32)
    gen = _load_yaml(tmp_path / "tasks" / "heldout_gen.yaml")
    ppl = _load_yaml(tmp_path / "tasks" / "heldout_ppl.yaml")
    data = tmp_path / "tasks" / "heldout.jsonl"
    assert gen["dataset_path"] == "json" and gen["dataset_kwargs"]["data_files"]["test"] == str(data.resolve())
    assert gen["output_type"] == "generate_until" and ppl["output_type"] == "loglikelihood"
    assert (gen["doc_to_text"], gen["description"], gen["target_delimiter"]) == ("prompt", "system", "")
    assert gen["generation_kwargs"] == {"until": [], "max_gen_toks": 32, "do_sample": False, "temperature": 0.0}
    metrics = [m["metric"] for m in gen["metric_list"]]
    assert metrics == ["exact_match", "!function distillery_metrics.rougeL", "chrf"]
    assert gen["metric_list"][0]["regexes_to_ignore"] == ["^\\s+", "\\s+$"]
    assert ppl["process_results"] == "!function distillery_metrics.perplexity_results"
    assert {m["metric"]: m["higher_is_better"] for m in ppl["metric_list"]} == {
        "word_perplexity": False, "byte_perplexity": False, "bits_per_byte": False}
    assert (tmp_path / "tasks" / "distillery_metrics.py").exists()
    assert [json.loads(line)["id"] for line in data.read_text().splitlines()] == ["p1", "p2", "p3", "p4", "p5", "p6"]


def test_plain_tasks_prompt_with_a_transcript(tmp_path):
    source = write_sft_jsonl(tmp_path / "h.jsonl", sft_records())
    write_heldout_tasks(source, tmp_path / "tasks", chat_template=False)
    gen = _load_yaml(tmp_path / "tasks" / "heldout_gen.yaml")
    assert gen["doc_to_text"] == "plain_prompt" and "description" not in gen
    assert gen["target_delimiter"] == " " and gen["generation_kwargs"]["until"] == ["\nUser:"]


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "h.jsonl").write_text("\n")
    with pytest.raises(HarnessError, match="no items"):
        read_heldout(tmp_path / "h.jsonl")


def test_metric_functions():
    from evaluation.harness.task_functions import perplexity_results, rougeL

    assert rougeL(["the cat sat"], ["the cat sat"]) == 1.0
    assert rougeL(["the cat sat"], ["a dog ran"]) == 0.0
    assert 0 < rougeL(["the cat sat on the mat"], ["the cat sat"]) < 1
    out = perplexity_results({"reference": "It is 4."}, [(-8.0, False)])
    assert out == {"word_perplexity": (-8.0, 3), "byte_perplexity": (-8.0, 8), "bits_per_byte": (-8.0, 8)}
