"""Dataset version page, diff, downloads, dataset cards, and decontamination (13-gram overlap) with exclusion."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.urls import reverse

from curation.models import Flag, Prompt, Teacher
from curation.selectors.versions import dataset_version_card, version_diff
from curation.services.contamination import (
    EvalIndex,
    dataset_version_exclude_contaminated,
    project_check_contamination,
)
from curation.services.datasets import dataset_version_freeze
from evaluation.models import EvaluationRun
from tests.curation.test_datasets import curate
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

BENCH_QUESTION = ("A farmer has seventeen sheep and all but nine run away through the broken gate, "
                  "how many sheep does the farmer have left in the field")


def task_folder(tmp_path):
    """A registered-style lm-eval task folder whose test data lives in a local JSON-lines file."""
    folder = tmp_path / "riddles"
    folder.mkdir()
    (folder / "riddles.yaml").write_text(
        "task: riddles\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: riddles.jsonl\n"
        "test_split: test\noutput_type: generate_until\ndoc_to_text: !function utils.doc_to_text\n"
        "doc_to_target: answer\n")
    (folder / "riddles.jsonl").write_text(
        json.dumps({"question": BENCH_QUESTION, "answer": "nine"}) + "\n"
        + json.dumps({"question": "Short one?", "answer": "yes"}) + "\n")
    return folder


def make_project_with_eval(project, tmp_path):
    EvaluationRun.objects.create(project=project, tasks=["heldout", str(task_folder(tmp_path))], status="succeeded")
    for i in range(8):
        curate(project, [f"Answer number {i} is a plain sentence about topic {i}."], prompt_text=f"Clean question {i}?")
    planted, _, _ = curate(project, ["Nine sheep are left."],
                           prompt_text=f"Riddle time. {BENCH_QUESTION.upper()}? Think step by step.")
    return planted


def test_the_index_matches_13_grams_and_whole_short_documents():
    index = EvalIndex()
    index.add_source("bench", ["one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
                               "alpha beta gamma delta epsilon zeta eta theta"])
    assert index.match("zero ONE two three four five six seven eight nine ten eleven twelve thirteen!")[1].startswith("one two")
    assert index.match("one two three four five six seven eight nine ten eleven twelve") is None  # 12 words only
    assert index.match("say: alpha beta gamma delta epsilon zeta eta theta, please") == (
        "bench", "alpha beta gamma delta epsilon zeta eta theta")
    assert index.match("alpha beta gamma delta epsilon zeta eta") is None


def test_freeze_finds_the_planted_row_and_one_action_excludes_it(project, tmp_path, curator):
    planted = make_project_with_eval(project, tmp_path)
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    result = version.contamination
    assert result["n"] == 13 and result["rows_checked"] == version.train_count == 9
    assert [m["prompt_id"] for m in result["rows"]] == [planted.pk] and result["count"] == 1
    assert "seventeen sheep and all but nine" in result["rows"][0]["match"]
    assert "riddles.jsonl" in result["rows"][0]["source"]
    assert "## Decontamination" in dataset_version_card(version) and "1 contaminated training rows" in dataset_version_card(version)

    clean = dataset_version_exclude_contaminated(version=version, actor=curator)
    assert clean.number == 2 and clean.row_count == 8
    assert not clean.rows.filter(prompt_id=planted.pk).exists() and clean.contamination["count"] == 0
    planted.refresh_from_db()
    assert planted.status == Prompt.Status.REJECTED
    assert "seventeen sheep" in Flag.objects.get(prompt=planted, kind="contaminated").detail


def test_a_training_row_repeating_a_heldout_row_is_contaminated(project):
    long_answer = "The mitochondria is the powerhouse of the cell and it makes most of the energy the cell uses daily."
    for i in range(6):
        curate(project, [f"{long_answer} Variant {i}."], prompt_text=f"Biology question {i}?")
    version = dataset_version_freeze(project=project, heldout_fraction=0.5)
    assert version.heldout_count >= 1 and version.train_count >= 1
    assert version.contamination["count"] == version.train_count  # every answer shares 13 words with a held-out one
    assert version.contamination["sources"][0]["name"] == "held-out split of v1"


def test_pre_freeze_check_lists_and_excludes(client, project, tmp_path, curator):
    planted = make_project_with_eval(project, tmp_path)
    assert [m["prompt_id"] for m in project_check_contamination(project=project)["rows"]] == [planted.pk]
    client.force_login(curator)
    url = reverse("curation:project_contamination", args=[project.slug])
    page = client.post(url, {"action": "check"}).content.decode()
    assert "1 contaminated item" in page and "seventeen sheep" in page
    page = client.post(url, {"action": "exclude"}).content.decode()
    assert "Excluded 1 contaminated item" in page
    assert dataset_version_freeze(project=project, heldout_fraction=0).row_count == 8


def test_card_names_teachers_terms_counts_annotators_and_lineage(project):
    Teacher.objects.create(project=project, name="big-teacher", kind="openai-compatible", model_name="teacher-model",
                           terms_of_use="Outputs may not be used to train competing models.")
    curate(project, ["An answer.", "A worse answer."], ranking=[0, 1])
    curate(project, ["Original."], edited="Edited by a human.")
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    EvaluationRun.objects.create(project=project, dataset_version=version, name="baseline", tasks=["heldout"])
    card = dataset_version_card(version)
    assert "# " in card and "| Rows | 2 |" in card and "| Answers edited by annotators | 1 |" in card
    assert "**teacher-model**: 2 rows (teacher *big-teacher*" in card
    assert "Outputs may not be used to train competing models." in card
    assert "the-annotator: 2 reviews" in card and version.content_hash in card
    assert "Evaluation run" in card and "baseline" in card


def test_api_card_and_contamination(client, project, tmp_path, curator, outsider):
    make_project_with_eval(project, tmp_path)
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    client.force_login(curator)
    card = client.get(f"/api/v1/dataset-versions/{version.pk}/card/")
    assert card.status_code == 200 and card["Content-Type"].startswith("text/markdown")
    assert card.content.decode().startswith(f"# {project.name}: dataset v1")
    data = client.get(f"/api/v1/dataset-versions/{version.pk}/contamination/").json()
    assert data["checked"] is True and data["count"] == 1 and "seventeen sheep" in data["rows"][0]["match"]
    assert client.get(f"/api/v1/dataset-versions/{version.pk}/").json()["contamination_count"] == 1
    client.force_login(outsider)
    assert client.get(f"/api/v1/dataset-versions/{version.pk}/card/").status_code == 404


def test_version_page_rows_search_split_pairs_and_downloads(client, project, curator):
    curate(project, ["Paris is the capital.", "Lyon."], ranking=[0, 1], prompt_text="Capital of France?")
    for i in range(30):
        curate(project, [f"Answer {i}."], prompt_text=f"Question {i}?")
    version = dataset_version_freeze(project=project, heldout_fraction=0.2)
    client.force_login(curator)
    url = reverse("curation:version_detail", args=[project.slug, 1])
    page = client.get(url).content.decode()
    assert "page 1 of 2" in page and "Download" in page and "Decontamination" in page and "sft · heldout" in page
    found = client.get(url, {"q": "capital"}, headers={"HX-Request": "true", "HX-Target": "rows"}).content.decode()
    assert "1 row matching" in found and "Paris is the capital." in found and "<html" not in found
    held = client.get(url, {"split": "heldout"}).content.decode()
    assert f"{version.heldout_count} row" in held
    pairs = client.get(url, {"pairs": "1"}).content.decode()
    assert "✘ Lyon." in pairs and "1 row" in pairs

    download = reverse("curation:version_download", args=[project.slug, 1])
    lines = b"".join(client.get(download, {"kind": "dpo", "split": "all"}).streaming_content).splitlines()
    assert json.loads(lines[0])["rejected"][0]["content"] == "Lyon."
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(client.get(download, {"kind": "zip"}).streaming_content)))
    names = set(bundle.namelist())
    assert f"{project.slug}-v1/README.md" in names and f"{project.slug}-v1/prompt-completion-heldout.jsonl" in names
    assert bundle.read(f"{project.slug}-v1/README.md").decode() == dataset_version_card(version)
    assert client.get(download, {"kind": "card"}).content.decode() == dataset_version_card(version)
    assert client.get(download, {"kind": "nope"}).status_code == 400


def test_annotators_see_the_page_but_cannot_download_and_outsiders_get_404(client, project, outsider):
    curate(project, ["An answer."])
    dataset_version_freeze(project=project, heldout_fraction=0)
    annotator = MembershipFactory(project=project, role="annotator").user
    client.force_login(annotator)
    assert client.get(reverse("curation:version_detail", args=[project.slug, 1])).status_code == 200
    assert client.get(reverse("curation:version_download", args=[project.slug, 1])).status_code == 403
    client.force_login(outsider)
    assert client.get(reverse("curation:version_detail", args=[project.slug, 1])).status_code == 404


def test_diff_lists_added_removed_and_changed_rows(client, project, curator):
    kept, _, _ = curate(project, ["Same."], prompt_text="Kept?")
    gone, _, _ = curate(project, ["Bye."], prompt_text="Gone?")
    changed, _, review = curate(project, ["Before."], prompt_text="Changed?")
    v1 = dataset_version_freeze(project=project, heldout_fraction=0)
    Prompt.objects.filter(pk=gone.pk).update(status=Prompt.Status.REJECTED)
    review.edited_text = "After the edit."
    review.save()
    new, _, _ = curate(project, ["Hello."], prompt_text="New?")
    v2 = dataset_version_freeze(project=project, heldout_fraction=0)
    diff = version_diff(v1, v2)
    assert diff.counts == {"added": 1, "removed": 1, "changed": 1, "unchanged": 1}
    assert [r.prompt_id for r in diff.added] == [new.pk] and [r.prompt_id for r in diff.removed] == [gone.pk]
    client.force_login(curator)
    html = client.get(reverse("curation:version_diff", args=[project.slug, 2]), {"against": 1}).content.decode()
    assert "v1 → v2" in html and "+1 added" in html and "<ins>" in html


def test_named_lm_eval_tasks_that_ran_are_compared_through_lm_evals_own_record(project, tmp_path):
    """A run of a named task (no folder in its task list) left lm_eval_results.json; its configs name the data."""
    data = tmp_path / "riddles.jsonl"
    data.write_text(json.dumps({"question": BENCH_QUESTION}) + "\n")
    model_dir = tmp_path / "run" / "models" / "00_teacher"
    model_dir.mkdir(parents=True)
    (model_dir / "lm_eval_results.json").write_text(json.dumps({"configs": {
        "riddles_named": {"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}}},
        "hellaswag": {"dataset_path": "Rowan/hellaswag"},
        "heldout_gen": {"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": "/elsewhere.jsonl"}}},
    }}))
    EvaluationRun.objects.create(project=project, tasks=["riddles_named", "hellaswag"], status="succeeded",
                                 artifact_dir=str(tmp_path / "run"))
    planted, _, _ = curate(project, ["Nine."], prompt_text=f"Riddle: {BENCH_QUESTION}?")
    curate(project, ["Clean."], prompt_text="Clean?")
    version = dataset_version_freeze(project=project, heldout_fraction=0)
    result = version.contamination
    assert [m["prompt_id"] for m in result["rows"]] == [planted.pk]
    assert result["rows"][0]["source"] == "task riddles_named: riddles.jsonl"
    assert result["skipped"] == ["lm-eval task hellaswag (no local data)"]
