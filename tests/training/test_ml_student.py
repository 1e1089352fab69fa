"""Student building: layer choice, DistilBERT-style copy, LoRA merge on export."""

from __future__ import annotations

import pytest
import torch

from training.ml.config import TrainConfig
from training.ml.student import (
    build_student,
    count_params,
    count_params_in_folder,
    derive_student,
    evenly_spaced_layers,
    export_student,
    load_causal_lm,
)


def test_evenly_spaced_layers_matches_the_smollm2_choice():
    assert evenly_spaced_layers(30, 10) == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
    assert evenly_spaced_layers(4, 2) == [0, 3]
    assert evenly_spaced_layers(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        evenly_spaced_layers(4, 5)


def test_derive_keeps_k_layers_and_copies_every_weight(tiny_teacher):
    teacher = load_causal_lm(tiny_teacher)
    student, kept = derive_student(teacher, 2)  # load_state_dict(strict=True) inside: no missing/unexpected key

    assert kept == [0, 3]
    assert student.config.num_hidden_layers == 2
    assert len(student.model.layers) == 2
    t_state, s_state = teacher.state_dict(), student.state_dict()
    assert torch.equal(s_state["model.layers.1.mlp.up_proj.weight"], t_state["model.layers.3.mlp.up_proj.weight"])
    assert torch.equal(s_state["model.embed_tokens.weight"], t_state["model.embed_tokens.weight"])
    assert torch.equal(s_state["model.norm.weight"], t_state["model.norm.weight"])
    assert count_params(student) < count_params(teacher)


def test_deriving_all_layers_reproduces_the_teacher(tiny_teacher):
    teacher = load_causal_lm(tiny_teacher).eval()
    student, _ = derive_student(teacher, teacher.config.num_hidden_layers)
    ids = torch.tensor([[1, 20, 30, 40, 2]])
    with torch.no_grad():
        assert torch.allclose(student.eval()(ids).logits, teacher(ids).logits)


def test_param_count_from_config_matches_loaded_model(tiny_teacher):
    assert count_params_in_folder(tiny_teacher) == count_params(load_causal_lm(tiny_teacher))


def test_lora_student_trains_adapters_and_exports_merged(tiny_teacher, tmp_path):
    config = TrainConfig(
        student_source="lora", student_path=str(tiny_teacher), train_file="x", output_dir=str(tmp_path), lora_r=4
    )
    student = build_student(config)
    assert 0 < student.trainable_params < student.student_params
    assert student.teacher is None

    folder = export_student(student.model, student.tokenizer, tmp_path / "model")
    merged = load_causal_lm(folder)
    assert count_params(merged) == student.student_params
    assert not any("lora" in key for key in merged.state_dict())
    assert (folder / "model.safetensors").exists()


def test_kd_keeps_the_teacher_loaded_once(make_config):
    student = build_student(make_config(method="kd"))
    assert student.teacher is not None
    assert not any(p.requires_grad for p in student.teacher.parameters())
    assert all(p.requires_grad for p in student.model.parameters())
    assert student.teacher_params > student.student_params


def test_config_round_trips_and_rejects_unknown_fields(make_config, tmp_path):
    config = make_config(kd_temperature=3.0, meta={"run": 5})
    path = tmp_path / "config.json"
    config.to_json(path)
    assert TrainConfig.from_json(path) == config
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown TrainConfig fields: lerning_rate"):
        TrainConfig.from_dict({"lerning_rate": 1.0})
    with pytest.raises(ValueError, match="teacher_path"):
        TrainConfig(method="kd", student_source="folder", student_path="s", train_file="f", output_dir="o").validate()
