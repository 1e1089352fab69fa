"""Freezing dataset versions and exporting them in the layouts training libraries read."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from curation.models import DatasetRow, Prompt, Review
from curation.services.datasets import dataset_export, dataset_export_lines, dataset_version_freeze
from tests.factories import CompletionFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db


def curate(project, texts, *, chosen=0, ranking=None, edited="", decision="approve", adjudication=False,
           annotator=None, prompt_text=None, status=Prompt.Status.APPROVED):
    """A prompt with candidates ``texts`` and one review choosing ``texts[chosen]`` (indices for ranking)."""
    prompt = PromptFactory(project=project, status=status, **({"text": prompt_text} if prompt_text else {}))
    completions = [CompletionFactory(prompt=prompt, text=text) for text in texts]
    review = Review.objects.create(
        prompt=prompt, annotator=annotator or _annotator(), decision=decision, is_adjudication=adjudication,
        chosen=completions[chosen] if chosen is not None else None, edited_text=edited,
        ranking=[completions[i].id for i in ranking] if ranking else [],
    )
    return prompt, completions, review


def _annotator():
    # One account for the plain reviews: every UserFactory() hashes a password, which is slow.
    user = get_user_model().objects.filter(username="the-annotator").first()
    return user or get_user_model().objects.create(username="the-annotator")


def export_text(version, fmt, split="all") -> list[dict]:
    return [json.loads(line) for line in b"".join(dataset_export_lines(version=version, format=fmt, split=split)).splitlines()]


def test_freeze_copies_the_curated_answer_ranking_and_edit(project):
    project.system_prompt = "Be brief."
    project.save()
    ranked, _, _ = curate(project, ["good", "bad", "worse"], chosen=0, ranking=[0, 2, 1])
    edited, _, _ = curate(project, ["teacher text", "other"], chosen=0, edited="fixed text")
    curate(project, ["pending"], status=Prompt.Status.PENDING)
    curate(project, ["rejected"], decision="reject", status=Prompt.Status.REJECTED)
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    assert (version.number, version.row_count, version.train_count, version.heldout_count) == (1, 2, 2, 0)
    rows = {row.prompt_id: row for row in version.rows.all()}
    assert rows[ranked.id].response == "good" and rows[ranked.id].rejected == ["worse", "bad"]
    assert rows[ranked.id].messages[0] == {"role": "system", "content": "Be brief."}
    assert (rows[edited.id].response, rows[edited.id].original) == ("fixed text", "teacher text")
    assert rows[edited.id].rejected == ["other"]  # no ranking: the unchosen candidate lost
    assert version.pair_count == 2 + 2  # ranking pairs + (edit vs original, edit vs other)
    assert len(version.content_hash) == 64


def test_adjudication_wins_over_the_latest_review(project):
    prompt, completions, _ = curate(project, ["first", "second"], chosen=0, adjudication=True)
    Review.objects.create(prompt=prompt, annotator=UserFactory(), decision="approve", chosen=completions[1])
    version = dataset_version_freeze(project=project)
    assert version.rows.get().response == "first"


def test_latest_approving_review_wins_and_superseded_ones_do_not_count(project):
    prompt, completions, _ = curate(project, ["first", "second", "third"], chosen=0)
    Review.objects.create(prompt=prompt, annotator=UserFactory(), decision="approve", chosen=completions[1])
    Review.objects.create(prompt=prompt, annotator=UserFactory(), decision="approve", chosen=completions[2],
                          superseded=True)
    assert dataset_version_freeze(project=project).rows.get().response == "second"


def test_approved_prompts_without_an_answer_are_skipped_and_counted(project):
    curate(project, ["a", "b"], chosen=None)
    curate(project, ["kept"])
    version = dataset_version_freeze(project=project)
    assert version.row_count == 1 and version.rule["skipped_without_answer"] == 1


def test_empty_freeze_is_refused(project):
    curate(project, ["x"], status=Prompt.Status.PENDING)
    with pytest.raises(ValidationError, match="Nothing to freeze"):
        dataset_version_freeze(project=project)
    assert not project.dataset_versions.exists()


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_heldout_fraction_is_checked(project, fraction):
    with pytest.raises(ValidationError):
        dataset_version_freeze(project=project, heldout_fraction=fraction)


def test_freeze_is_deterministic_and_numbers_versions(project):
    for i in range(30):
        curate(project, [f"answer {i}", f"other {i}"], ranking=[0, 1])
    first = dataset_version_freeze(project=project, heldout_fraction=0.3, seed=7)
    second = dataset_version_freeze(project=project, heldout_fraction=0.3, seed=7)
    assert (first.number, second.number) == (1, 2)
    assert first.content_hash == second.content_hash
    split = lambda v: list(v.rows.order_by("position").values_list("prompt_id", "split"))  # noqa: E731
    assert split(first) == split(second)
    assert 0 < first.heldout_count < 30 and first.train_count + first.heldout_count == 30
    other_seed = dataset_version_freeze(project=project, heldout_fraction=0.3, seed=8)
    assert split(other_seed) != split(first) and other_seed.content_hash != first.content_hash


def test_a_prompt_keeps_its_split_when_the_dataset_grows(project):
    for i in range(40):
        curate(project, [f"answer {i}"])
    before = dict(dataset_version_freeze(project=project, heldout_fraction=0.2).rows.values_list("prompt_id", "split"))
    for i in range(40, 60):
        curate(project, [f"answer {i}"])
    after = dict(dataset_version_freeze(project=project, heldout_fraction=0.2).rows.values_list("prompt_id", "split"))
    assert all(after[pid] == split for pid, split in before.items())


def test_small_versions_get_both_splits(project):
    curate(project, ["one"])
    curate(project, ["two"])
    version = dataset_version_freeze(project=project, heldout_fraction=0.01)
    assert (version.train_count, version.heldout_count) == (1, 1)
    assert sorted(version.rows.values_list("split", flat=True)) == ["heldout", "train"]


def test_edits_after_freeze_change_nothing_in_the_version(project):
    prompt, completions, review = curate(project, ["teacher", "worse"], ranking=[0, 1], edited="curated")
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    exported = b"".join(dataset_export_lines(version=version, format="dpo", split="all"))
    review.edited_text = "changed later"
    review.save()
    completions[0].text = "rewritten teacher"
    completions[0].save()
    prompt.messages = [{"role": "user", "content": "another question"}]
    prompt.save()
    row = version.rows.get()
    assert (row.response, row.original, row.rejected) == ("curated", "teacher", ["worse"])
    assert b"".join(dataset_export_lines(version=version, format="dpo", split="all")) == exported


def test_export_layouts(project):
    prompt, _, _ = curate(project, ["best", "mid", "worst"], ranking=[0, 1, 2], edited="best, edited",
                          prompt_text="Q?")
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    user = [{"role": "user", "content": "Q?"}]
    answer = [{"role": "assistant", "content": "best, edited"}]
    assert export_text(version, "sft") == [{"id": prompt.id, "messages": user + answer}]
    assert export_text(version, "prompt-completion") == [{"id": prompt.id, "prompt": user, "completion": answer}]
    dpo = export_text(version, "dpo")
    assert [row["rejected"][0]["content"] for row in dpo] == ["best", "mid", "worst"]  # the edit pair first
    assert all(row["prompt"] == user and row["chosen"] == answer for row in dpo)


def test_export_is_byte_identical_and_filters_splits(project, tmp_path):
    for i in range(20):
        curate(project, [f"réponse {i} ✓", f"other {i}"], ranking=[0, 1])
    version = dataset_version_freeze(project=project, heldout_fraction=0.3)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert dataset_export(version=version, format="sft", split="train", out=first) == version.train_count
    dataset_export(version=version, format="sft", split="train", out=second)
    assert first.read_bytes() == second.read_bytes()
    assert "réponse" in first.read_text(encoding="utf-8")  # ensure_ascii=False
    buffer = io.BytesIO()
    assert dataset_export(version=version, format="sft", split="heldout", out=buffer) == version.heldout_count
    heldout_ids = {json.loads(line)["id"] for line in buffer.getvalue().splitlines()}
    assert heldout_ids == set(version.rows.filter(split=DatasetRow.Split.HELDOUT).values_list("prompt_id", flat=True))
    line = first.read_bytes().splitlines()[0]
    assert line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_export_rejects_unknown_format_before_streaming(project):
    curate(project, ["x"])
    version = dataset_version_freeze(project=project)
    with pytest.raises(ValidationError):
        dataset_export_lines(version=version, format="parquet")
    with pytest.raises(ValidationError):
        dataset_export_lines(version=version, format="sft", split="validation")


# --- the exports work, unchanged, with datasets and TRL ------------------------------------------------


@pytest.fixture
def exported(project, tmp_path):
    for i in range(6):
        curate(project, [f"It is {2 * i}.", f"No idea {i}."], ranking=[0, 1], prompt_text=f"What is {i} + {i}?",
               edited=f"{i} + {i} = {2 * i}." if i % 2 else "")
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    paths = {}
    for fmt in ("sft", "prompt-completion", "dpo"):
        paths[fmt] = tmp_path / f"{fmt}.jsonl"
        dataset_export(version=version, format=fmt, split="train", out=paths[fmt])
    return paths


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tests.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_exports_load_with_datasets(exported):
    from datasets import load_dataset

    sft = load_dataset("json", data_files=str(exported["sft"]), split="train")
    assert sft.num_rows == 6 and sft[0]["messages"][-1]["role"] == "assistant"
    dpo = load_dataset("json", data_files=str(exported["dpo"]), split="train")
    assert dpo.num_rows == 6 + 3 and set(dpo.column_names) == {"id", "prompt", "chosen", "rejected"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["sft", "prompt-completion"])
def test_sft_trainer_takes_the_export_unchanged(exported, tiny_model, tmp_path, fmt):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    dataset = load_dataset("json", data_files=str(exported[fmt]), split="train")
    config = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                       save_strategy="no", use_cpu=True, max_length=128, dataloader_num_workers=0)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), args=config, train_dataset=dataset,
                         processing_class=AutoTokenizer.from_pretrained(tiny_model))
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


@pytest.mark.slow
def test_dpo_trainer_takes_the_export_unchanged(exported, tiny_model, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    dataset = load_dataset("json", data_files=str(exported["dpo"]), split="train")
    config = DPOConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                       save_strategy="no", use_cpu=True, max_length=128, dataloader_num_workers=0)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), args=config, train_dataset=dataset,
                         processing_class=AutoTokenizer.from_pretrained(tiny_model))
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
