"""Evaluating tiny models through the harness, each in its own child process (no database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.harness import (
    EvalOptions,
    EvaluationCancelled,
    HeldoutSpec,
    ModelSpec,
    TaskUnreachable,
    evaluate_models,
    plan_runs,
    run_model_subprocess,
)
from evaluation.harness.process import PROJECT_ROOT, child_env

pytestmark = pytest.mark.slow  # each test starts model processes

# One thread per child: faster on a shared 2-core machine, and the CLI comparison runs the same way.
ENV = {"OMP_NUM_THREADS": "1"}
OPTIONS = EvalOptions(batch_size=2)


@pytest.fixture(scope="module")
def evaluated(tiny_pair, tmp_path_factory):
    configs = plan_runs(
        [ModelSpec("teacher", "hf", str(tiny_pair.teacher), role="teacher"),
         ModelSpec("student", "hf", str(tiny_pair.student))],
        output_dir=str(tmp_path_factory.mktemp("run")),
        heldout=HeldoutSpec(str(tiny_pair.heldout), max_gen_toks=24),
        options=OPTIONS,
    )
    events = []
    results = evaluate_models(configs, on_progress=lambda i, f, m: events.append((i, f, m)), env=ENV)
    return configs, results, events


def _samples(result, task):
    return json.loads(Path(result.samples_files[task]).read_text())


def test_teacher_reproduces_the_curated_answers_and_the_student_half(evaluated):
    _, (teacher, student), _ = evaluated
    gen_t, gen_s = teacher.metrics["heldout_gen"], student.metrics["heldout_gen"]
    assert gen_t["exact_match"].value == 1.0 and gen_t["rougeL"].value == 1.0 and gen_t["chrf"].value == 100.0
    assert gen_s["exact_match"].value == 0.5
    assert gen_s["exact_match"].stderr == pytest.approx((0.25 / 5) ** 0.5)  # sample stderr of a 0/1 mean
    assert gen_t["exact_match"].higher_is_better is True
    ppl_t, ppl_s = teacher.metrics["heldout_ppl"], student.metrics["heldout_ppl"]
    assert ppl_t["word_perplexity"].higher_is_better is False and ppl_t["word_perplexity"].stderr is None
    assert 1.0 <= ppl_t["word_perplexity"].value < ppl_s["word_perplexity"].value
    assert teacher.n_samples == {"heldout_gen": 6, "heldout_ppl": 6}
    assert teacher.role == "teacher" and student.role == "student"


def test_samples_map_back_to_curation_items(evaluated, tiny_pair):
    _, (teacher, student), _ = evaluated
    records = _samples(student, "heldout_gen")
    assert [r["item_id"] for r in records] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert [r["metrics"]["exact_match"] for r in records] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    first = records[0]
    assert first["prompt"] == "What is 2 + 2?" and first["target"] == "It is 4."
    assert first["context"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert all(r["response"].strip() == r["target"] for r in _samples(teacher, "heldout_gen"))
    assert records[3]["metrics"]["chrf"] < 100 and records[3]["metrics"]["rougeL"] < 1
    ppl = _samples(teacher, "heldout_ppl")
    assert ppl[0]["response"] is None and ppl[0]["metrics"]["loglikelihood"] < 0
    assert set(ppl[0]["metrics"]) == {"word_perplexity", "byte_perplexity", "bits_per_byte", "loglikelihood"}


def test_size_and_speed_are_measured_on_the_heldout_prompts(evaluated, tiny_pair):
    _, (teacher, _), _ = evaluated
    m = teacher.measurements
    weights = (tiny_pair.teacher / "model.safetensors").stat().st_size
    assert m.size_on_disk_bytes == weights
    assert m.parameter_count == 101_568  # tiny Llama: 2 layers, hidden 64, tied embeddings
    assert (m.measured_on, m.prompts, m.batch_size) == ("heldout_gen", 6, 2)
    # Each curated answer is a handful of tokens plus the end-of-turn token.
    assert 6 * 2 <= m.generated_tokens <= 6 * 24
    assert m.tokens_per_second > 0 and m.batch_latency_s_mean > 0 and m.generate_seconds > 0


def test_progress_is_reported_and_monotonic(evaluated):
    _, _, events = evaluated
    for model in (0, 1):
        fractions = [f for i, f, _ in events if i == model]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        messages = [m for i, _, m in events if i == model]
        assert "indexing tasks" in messages and any(m.startswith("generate_until: 6/6") for m in messages)


def test_numbers_equal_a_bare_lm_eval_cli_run(evaluated, tmp_path):
    configs, (_, student), _ = evaluated
    command = list(student.lm_eval_command)
    command[command.index("--output_path") + 1] = str(tmp_path / "cli")
    proc = subprocess.run([sys.executable, "-m", "lm_eval", *command[1:]], env=child_env(configs[1].offline, ENV),
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli = json.loads(next((tmp_path / "cli").rglob("results_*.json")).read_text())
    ours = json.loads((Path(student.output_dir) / "lm_eval_results.json").read_text())
    assert cli["results"] == ours["results"]
    for task in ("heldout_gen", "heldout_ppl"):
        cli_rows = [json.loads(line) for line in next((tmp_path / "cli").rglob(f"samples_{task}_*.jsonl")).open()]
        ours_rows = {r["doc_id"]: r for r in _samples(student, task)}
        for row in cli_rows:
            assert row["filtered_resps"][0] == ours_rows[row["doc_id"]]["response"] or task == "heldout_ppl"
    assert "--apply_chat_template" in command and "--batch_size" in command


def test_unreachable_builtin_task_fails_before_the_model_loads(tiny_pair, tmp_path):
    config = plan_runs([ModelSpec("teacher", "hf", str(tiny_pair.teacher))], output_dir=str(tmp_path),
                       tasks=["hellaswag"], heldout=HeldoutSpec(str(tiny_pair.heldout)))[0]
    messages = []
    with pytest.raises(TaskUnreachable, match="Task 'hellaswag' cannot run here") as exc:
        run_model_subprocess(config, on_progress=lambda f, m: messages.append(m), env=ENV)
    assert "needs network access" in str(exc.value)
    assert not any(m.startswith("loading") for m in messages)


def test_cancel_stops_the_child(tiny_pair, tmp_path):
    config = plan_runs([ModelSpec("teacher", "hf", str(tiny_pair.teacher))], output_dir=str(tmp_path),
                       heldout=HeldoutSpec(str(tiny_pair.heldout)))[0]
    with pytest.raises(EvaluationCancelled):
        run_model_subprocess(config, should_cancel=lambda: True, env=ENV, poll_seconds=0.1)
    assert not (Path(config.output_dir) / "result.json").exists()


def test_child_environment_keeps_the_hub_away(tiny_pair, tmp_path):
    config = plan_runs([ModelSpec("t", "hf", str(tiny_pair.teacher))], output_dir=str(tmp_path))[0]
    env = child_env(config.offline)
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert str(PROJECT_ROOT) in env["PYTHONPATH"].split(os.pathsep)
