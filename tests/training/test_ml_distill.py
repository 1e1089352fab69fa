"""Fidelity metrics, the offline logit cache and block-importance layer selection, on tiny models."""

from __future__ import annotations

import json
import math

import pytest
import torch

from evaluation.harness.fidelity import clustered_mean, measure_fidelity
from tests.training.conftest import SFT_ROWS
from training.ml.data import CausalLMCollator, load_sft_dataset, read_jsonl
from training.ml.logit_cache import CacheManifest, CacheMismatch, LogitCache, build_logit_cache
from training.ml.pruning import block_influence, reply_loss, select_layers
from training.ml.student import derive_student, load_causal_lm, load_tokenizer


@pytest.fixture(scope="module")
def models(tiny_teacher):
    torch.manual_seed(0)
    teacher = load_causal_lm(tiny_teacher).eval()
    student, _ = derive_student(teacher, 2)
    return teacher, student.eval(), load_tokenizer(tiny_teacher)


def _by_hand(teacher, student, tokenizer, row):
    """The metrics of one example in float64, position by position, from the rendered chat strings."""
    messages = row["messages"]
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                           return_dict=False)
    full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    ids = torch.tensor([full])
    with torch.no_grad():
        t = teacher(input_ids=ids).logits[0].double().log_softmax(-1)
        s = student(input_ids=ids).logits[0].double().log_softmax(-1)
    kl = top1 = ce = 0.0
    positions = range(len(prompt) - 1, len(full) - 1)
    for i in positions:
        kl += sum(math.exp(float(t[i, v])) * float(t[i, v] - s[i, v]) for v in range(t.shape[1]))
        top1 += float(int(t[i].argmax()) == int(s[i].argmax()))
        ce += -float(s[i, full[i + 1]])
    n = len(positions)
    return n, kl, top1, ce


def test_fidelity_matches_a_hand_computation(models):
    teacher, student, tokenizer = models
    rows = SFT_ROWS[:3]
    result = measure_fidelity(student, teacher, tokenizer, rows, batch_size=2)  # padding inside batches
    hand = [_by_hand(teacher, student, tokenizer, row) for row in rows]
    tokens = sum(h[0] for h in hand)
    assert result.tokens == tokens and result.examples == 3
    assert result.kl == pytest.approx(sum(h[1] for h in hand) / tokens, rel=1e-4)
    assert result.top1 == pytest.approx(sum(h[2] for h in hand) / tokens, abs=1e-9)
    assert result.ce == pytest.approx(sum(h[3] for h in hand) / tokens, rel=1e-5)
    for example, (n, kl, _, ce) in zip(result.per_example, hand, strict=True):
        assert example.tokens == n
        assert example.kl == pytest.approx(kl / n, rel=1e-3)
        assert example.ce == pytest.approx(ce / n, rel=1e-4)
    assert result.kl_stderr is not None and result.kl_stderr > 0


def test_a_model_is_perfectly_faithful_to_itself(models):
    teacher, _, tokenizer = models
    result = measure_fidelity(teacher, teacher, tokenizer, SFT_ROWS, batch_size=4)
    assert result.kl == pytest.approx(0.0, abs=1e-6)
    assert result.top1 == 1.0
    assert result.ce == pytest.approx(result.teacher_ce)


def test_clustered_stderr_is_the_ratio_estimator():
    sums, counts = [2.0, 6.0, 1.0], [2, 4, 2]
    mean, stderr = clustered_mean(sums, counts)
    assert mean == pytest.approx(9 / 8)
    residual = [s - mean * c for s, c in zip(sums, counts, strict=True)]
    expected = math.sqrt(sum(r * r for r in residual) / 2 / 3) / (8 / 3)
    assert stderr == pytest.approx(expected)
    assert clustered_mean([1.0], [3])[1] is None


def _targets(batch) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


def _trainer_and_batch(config, student):
    from training.ml.run import _distill_trainer

    dataset, _ = load_sft_dataset(config.train_file, student.tokenizer, config.max_seq_len)
    trainer = _distill_trainer(config, student, dataset, 1, config.checkpoints_dir, [])
    return trainer, trainer.data_collator([dataset[i] for i in range(len(dataset))])


@pytest.mark.parametrize(
    ("dtype", "beta", "temperature", "tolerance"),
    [("float32", 0.0, 2.0, 1e-5), ("float32", 0.0, 1.0, 1e-5), ("float32", 0.5, 2.0, 1e-5), ("float16", 0.0, 1.0, 2e-2)],
)
def test_cached_logit_kd_equals_live_kd_with_the_full_vocabulary(
    make_config, tmp_path, dtype, beta, temperature, tolerance
):
    from training.ml.student import build_student

    live = make_config(
        method="kd", layer_selection="even", kd_jsd_beta=beta, kd_alpha=0.3, kd_temperature=temperature
    )
    student = build_student(live)
    teacher, tokenizer = student.teacher, student.tokenizer
    assert teacher is not None
    manifest = build_logit_cache(
        teacher, tokenizer, live.train_file, tmp_path / "cache", teacher_name="tiny", top_k=len(tokenizer),
        max_seq_len=live.max_seq_len, batch_size=3, dtype=dtype, shard_examples=2,
    )
    assert manifest.complete and manifest.top_k == len(tokenizer) and len(manifest.shards) == 2
    assert manifest.size_bytes == sum(s["bytes"] for s in manifest.shards) > 0
    live_trainer, batch = _trainer_and_batch(live, student)
    with torch.no_grad():
        live_loss = float(live_trainer.compute_loss(student.model, batch, num_items_in_batch=_targets(batch)))
    assert live_trainer._parts["kd"] > 0

    cached = make_config(
        method="kd", layer_selection="even", kd_jsd_beta=beta, kd_alpha=0.3, kd_temperature=temperature,
        logit_cache_dir=str(tmp_path / "cache"),
    )
    student.teacher = None  # nothing of the teacher is left to the cached trainer
    cached_trainer, cached_batch = _trainer_and_batch(cached, student)
    assert cached_trainer.teacher is None and cached_trainer.cached_teacher
    assert torch.equal(cached_batch["input_ids"], batch["input_ids"])
    with torch.no_grad():
        cached_loss = float(
            cached_trainer.compute_loss(student.model, cached_batch, num_items_in_batch=_targets(batch))
        )
    assert cached_loss == pytest.approx(live_loss, rel=tolerance)


def test_cache_refuses_other_data_and_resumes_from_complete_shards(models, tiny_teacher, sft_file, tmp_path):
    teacher, _, tokenizer = models
    folder = tmp_path / "cache"
    stops = iter([False, False, True])
    partial = build_logit_cache(teacher, tokenizer, sft_file, folder, teacher_name="tiny", top_k=8,
                                batch_size=1, shard_examples=1, should_stop=lambda: next(stops))
    assert not partial.complete and len(partial.shards) == 2
    first = (folder / "shard-00000.safetensors").stat().st_mtime_ns
    done = build_logit_cache(teacher, tokenizer, sft_file, folder, teacher_name="tiny", top_k=8, batch_size=1,
                             shard_examples=1)
    assert done.complete and len(done.shards) == len(read_jsonl(sft_file))
    assert (folder / "shard-00000.safetensors").stat().st_mtime_ns == first  # not recomputed
    assert CacheManifest.load(folder).sha256 == done.sha256 and len(done.sha256) == 64
    cache = LogitCache(folder)
    cache.check(sft_file, tokenizer, 1024)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(SFT_ROWS[0]) + "\n")
    with pytest.raises(CacheMismatch, match="different training file"):
        cache.check(other, tokenizer, 1024)
    with pytest.raises(CacheMismatch, match="max_seq_len"):
        cache.check(sft_file, tokenizer, 512)


def test_block_importance_drops_a_layer_that_does_nothing(tiny_teacher):
    teacher = load_causal_lm(tiny_teacher).eval()
    tokenizer = load_tokenizer(tiny_teacher)
    idle = teacher.model.layers[2]
    with torch.no_grad():  # no attention or MLP output: the layer passes its input through unchanged
        idle.self_attn.o_proj.weight.zero_()
        idle.mlp.down_proj.weight.zero_()
    selection = select_layers(teacher, tokenizer, SFT_ROWS, 3, batch_size=2)
    assert selection.block_influence[2] == pytest.approx(0.0, abs=1e-5)
    assert min(selection.block_influence[i] for i in (0, 1, 3)) > 1e-3
    assert 2 not in selection.kept and len(selection.kept) == 3
    assert selection.starting_loss == min(c["loss"] for c in selection.candidates)
    # Dropping an identity layer loses nothing: the student starts exactly where the teacher is.
    assert selection.starting_loss == pytest.approx(selection.teacher_loss, abs=1e-3)
    assert {c["name"] for c in selection.candidates} >= {"block_influence", "evenly_spaced"}


def test_block_influence_and_reply_loss_see_only_reply_tokens(models):
    teacher, _, tokenizer = models
    from training.ml.data import padded_batches, tokenize_sft

    examples, stats = tokenize_sft(SFT_ROWS, tokenizer, 1024)
    batches = list(padded_batches(examples, 4, tokenizer.pad_token_id))
    influence, tokens = block_influence(teacher, batches)
    assert tokens == stats.target_tokens  # the hidden states at the reply tokens
    assert len(influence) == teacher.config.num_hidden_layers
    assert reply_loss(teacher, batches) > 0


def test_collator_keeps_rows_for_the_cache(tiny_teacher, sft_file):
    tokenizer = load_tokenizer(tiny_teacher)
    dataset, _ = load_sft_dataset(sft_file, tokenizer, 1024)
    assert [dataset[i]["row"] for i in range(len(dataset))] == list(range(len(dataset)))
    batch = CausalLMCollator(tokenizer.pad_token_id, padding_free=True)([dataset[0], dataset[1]])
    assert "row" not in batch


def test_kd_from_the_cache_trains_without_a_teacher_in_memory(make_config, tmp_path):
    from training.ml.run import run_training

    config = make_config(method="kd", layer_selection="importance", max_steps=4)
    teacher = load_causal_lm(config.teacher_path)
    build_logit_cache(teacher, load_tokenizer(config.teacher_path), config.train_file, tmp_path / "cache",
                      teacher_name="tiny", top_k=16, max_seq_len=config.max_seq_len)
    config.logit_cache_dir = str(tmp_path / "cache")
    result = run_training(config)
    assert result.status == "succeeded" and result.steps == 4
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["logit_cache"]["top_k"] == 16
    assert report["layer_selection"]["kept"] == report["kept_layers"]
    assert report["layer_selection"]["starting_loss"] > 0
    assert any("kd_loss" in entry for entry in report["loss_history"]) or report["loss_history"]


def test_onpolicy_distillation_with_a_recovery_stage(make_config, sft_file):
    from training.ml.run import run_training

    events = []
    config = make_config(method="onpolicy", onpolicy_lmbda=1.0, onpolicy_max_new_tokens=6, max_steps=2,
                         recovery_file=str(sft_file), recovery_steps=2, layer_selection="even")
    result = run_training(config, progress=events.append)
    assert result.status == "succeeded" and result.steps == 2
    report = json.loads((config.model_dir.parent / "report.json").read_text())
    assert report["recovery"]["steps"] == 2 and report["recovery"]["with_teacher_logits"]
    assert any(event.get("stage") == "recovery" for event in events)
    assert (config.model_dir / "config.json").exists()
