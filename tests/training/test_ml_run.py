"""run_training end to end on tiny models: each method, determinism, cancel and resume, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.ml.run import run_training
from training.ml.student import load_causal_lm, load_tokenizer


def _log_losses(events: list[dict]) -> list[float]:
    return [event["loss"] for event in events if event["event"] == "log"]


def test_sft_loss_falls_on_a_tiny_overfit_set_and_exports(make_config):
    events: list[dict] = []
    result = run_training(make_config(max_steps=30, logging_steps=1), progress=events.append)

    losses = _log_losses(events)
    assert result.status == "succeeded"
    assert losses[-1] < 0.6 * losses[0]
    assert result.final_loss == losses[-1]
    assert result.steps == result.total_steps == 30
    assert result.tokens > 0 and result.tokens_per_second > 0
    assert result.teacher_params > result.student_params

    folder = Path(result.model_dir)
    assert (folder / "model.safetensors").exists()
    assert load_tokenizer(folder).chat_template  # the exported student can be prompted like the teacher
    assert load_causal_lm(folder).config.num_hidden_layers == 2

    report = json.loads(Path(result.report_path).read_text())
    assert report["status"] == "succeeded"
    assert report["data"]["examples"] == 4
    assert report["params"]["teacher"] == result.teacher_params
    # Layers chosen by measured starting loss (the default): the report shows the winner among the candidates.
    selection = report["layer_selection"]
    assert report["kept_layers"] == selection["kept"] and len(selection["kept"]) == 2
    assert selection["starting_loss"] == min(c["loss"] for c in selection["candidates"])
    assert len(report["train_file_sha256"]) == 64
    assert [point["loss"] for point in report["loss_history"]] == losses


def test_progress_events_carry_step_total_speed_and_eta(make_config):
    events: list[dict] = []
    run_training(make_config(max_steps=6, logging_steps=3), progress=events.append)

    assert events[0]["event"] == "start" and events[0]["total"] == 6
    last = [event for event in events if event["event"] in ("step", "log")][-1]
    assert last["step"] == 6 and last["eta_seconds"] == 0
    assert last["tokens_per_second"] > 0 and last["learning_rate"] is not None
    assert all(json.dumps(event) for event in events)


def test_same_seed_gives_the_same_final_loss(make_config, tmp_path):
    first = run_training(make_config(output_dir=str(tmp_path / "a"), max_steps=8))
    second = run_training(make_config(output_dir=str(tmp_path / "b"), max_steps=8))
    other_seed = run_training(make_config(output_dir=str(tmp_path / "c"), max_steps=8, seed=8))

    assert first.final_loss == pytest.approx(second.final_loss, rel=1e-6)
    assert first.final_loss != pytest.approx(other_seed.final_loss, rel=1e-6)


def test_padding_free_gives_the_padded_loss(make_config, tmp_path):
    # fp32: the claim is that the two batch layouts compute the same thing, not that bf16 rounds alike.
    padded = run_training(make_config(output_dir=str(tmp_path / "a"), packing=False, max_steps=5, precision="fp32"))
    packed = run_training(make_config(output_dir=str(tmp_path / "b"), packing=True, max_steps=5, precision="fp32"))
    assert packed.final_loss == pytest.approx(padded.final_loss, rel=1e-4)


def test_cancel_keeps_a_checkpoint_and_resume_continues_from_it(make_config, tmp_path):
    uninterrupted = run_training(make_config(output_dir=str(tmp_path / "whole")))

    config = make_config(output_dir=str(tmp_path / "stopped"))
    events: list[dict] = []
    checks: list[int] = []

    def should_stop() -> bool:  # asked once per step: true from the end of step 7
        checks.append(1)
        return len(checks) >= 7

    stopped = run_training(config, progress=events.append, should_stop=should_stop)
    assert stopped.status == "cancelled"
    assert stopped.model_dir is None
    assert stopped.checkpoint.endswith("checkpoint-7")  # saved on stop, not at save_steps=10
    assert any(event["event"] == "stopping" for event in events)

    resumed = run_training(config)
    assert resumed.status == "succeeded"
    assert resumed.resumed_from_step == 7
    assert resumed.steps == 20
    # Optimizer, scheduler, RNG and data position all come back: the loss is the uninterrupted run's.
    assert resumed.final_loss == pytest.approx(uninterrupted.final_loss, rel=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_kd_moves_a_different_student_towards_the_teacher(make_config, tmp_path, beta):
    from tests.tiny import save_tiny_model

    # A derived student starts as a copy of the teacher; a differently seeded one has something to learn.
    student = save_tiny_model(tmp_path / "student", layers=2, seed=1)
    events: list[dict] = []
    config = make_config(
        method="kd", student_source="folder", student_path=str(student), kd_alpha=0.0, kd_jsd_beta=beta,
        max_steps=10, logging_steps=1,
    )
    result = run_training(config, progress=events.append)
    logs = [event for event in events if event["event"] == "log"]

    assert result.status == "succeeded"
    assert all("kd_loss" in event and "ce_loss" in event for event in logs)
    assert logs[-1]["kd_loss"] < 0.5 * logs[0]["kd_loss"]
    assert Path(result.model_dir, "model.safetensors").exists()


def test_kd_with_a_different_tokenizer_is_refused(make_config, tmp_path):
    from tests.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer(vocab_size=400)
    folder = tmp_path / "other"
    build_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(ValueError, match="share one tokenizer"):
        run_training(make_config(method="kd", student_source="folder", student_path=str(folder)))


def test_dpo_completes(make_config, dpo_file):
    events: list[dict] = []
    result = run_training(
        make_config(method="dpo", train_file=str(dpo_file), max_steps=8, logging_steps=2, learning_rate=1e-3),
        progress=events.append,
    )
    losses = _log_losses(events)
    assert result.status == "succeeded"
    assert losses[-1] < losses[0]
    assert Path(result.model_dir, "model.safetensors").exists()


def test_lora_sft_completes_and_exports_a_merged_model(make_config, tiny_teacher):
    result = run_training(
        make_config(student_source="lora", student_path=str(tiny_teacher), max_steps=5, lora_r=4)
    )
    assert result.trainable_params < result.student_params
    merged = load_causal_lm(result.model_dir)
    assert not any("lora" in key for key in merged.state_dict())


def test_a_half_written_checkpoint_is_passed_over(make_config):
    from training.ml.run import last_checkpoint

    config = make_config()
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = config.checkpoints_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (config.checkpoints_dir / "checkpoint-20").mkdir()
    (config.checkpoints_dir / "checkpoint-20" / "trainer_state.json").write_text('{"cut sho')  # killed mid-write

    assert last_checkpoint(config).endswith("checkpoint-10")
