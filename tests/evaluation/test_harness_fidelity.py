"""The fidelity child process: a teacher loaded once, each student compared with it, every model timed."""

from __future__ import annotations

import pytest

from evaluation.harness import ModelSpec
from evaluation.harness.fidelity import FidelityRunConfig, measure_fidelity_files
from evaluation.harness.process import run_fidelity_subprocess


def test_fidelity_child_ranks_the_fitted_teacher_above_the_half_fitted_student(tiny_pair, tmp_path):
    config = FidelityRunConfig(
        teacher=ModelSpec("teacher", "hf", str(tiny_pair.teacher), role="teacher"),
        students=[ModelSpec("student", "hf", str(tiny_pair.student)),
                  ModelSpec("itself", "hf", str(tiny_pair.teacher))],
        data_file=str(tiny_pair.heldout), output_dir=str(tmp_path / "fidelity"),
        speed_batch_sizes=[1, 2], speed_new_tokens=4, speed_repeats=1,
    )
    events = []
    result = run_fidelity_subprocess(config, on_progress=lambda f, m: events.append(m))
    models = result["models"]
    assert set(models) == {"teacher", "student", "itself"}
    assert "fidelity" not in models["teacher"]
    itself, student = models["itself"]["fidelity"], models["student"]["fidelity"]
    assert itself["kl"] == pytest.approx(0.0, abs=1e-6) and itself["top1"] == 1.0
    assert student["kl"] > 0.01 and student["top1"] < 1.0 and student["kl_stderr"] > 0
    assert len(models["student"]["per_example"]) == len(tiny_pair.records)
    # Same numbers as measuring in this process.
    here = measure_fidelity_files(tiny_pair.student, tiny_pair.teacher, tiny_pair.heldout)
    assert student["kl"] == pytest.approx(here.kl, rel=1e-5) and student["tokens"] == here.tokens
    for entry in models.values():
        assert [p["batch_size"] for p in entry["speed"]["points"]] == [1, 2]
        assert all(p["new_tokens"] == 4 for p in entry["speed"]["points"])
    assert any("fidelity of student" in m for m in events)
