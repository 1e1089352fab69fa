"""The management commands are doors onto the services: counts printed, failures exit non-zero."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.models import Completion, DatasetVersion, ImportJob, Membership, Project, Prompt
from tests.curation.test_datasets import curate
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_import_outputs_prints_counts(project, tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"prompt": "Q", "completions": ["A", "B"]}\n')
    output = run("import_outputs", str(path), "--project", project.slug)
    assert "read 1, imported 1, duplicates 0, invalid 0" in output
    assert "read 1, imported 0, duplicates 1" in run("import_outputs", str(path), "--project", project.slug)


def test_import_outputs_fails_with_the_reasons(project, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "Q", "completion": "A"}\n{"prompt": ""}\nnot json\n')
    with pytest.raises(CommandError) as failure:
        run("import_outputs", str(path), "--project", project.slug)
    assert "line 2: empty text: prompt" in str(failure.value) and "line 3: bad JSON" in str(failure.value)
    assert not Prompt.objects.exists()
    with pytest.raises(CommandError, match="No project"):
        run("import_outputs", str(path), "--project", "nope")


def test_import_outputs_skip_invalid_writes_rejects_next_to_the_file(project, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "Q", "completion": "A"}\nnot json\n')
    output = run("import_outputs", str(path), "--project", project.slug, "--skip-invalid")
    rejects = tmp_path / "bad.jsonl.rejects.jsonl"
    assert "imported 1" in output and str(rejects) in output
    assert json.loads(rejects.read_text())["line"] == 2


def test_import_outputs_with_batch_input(project, tmp_path):
    requests = tmp_path / "in.jsonl"
    requests.write_text(json.dumps({"custom_id": "r1", "body": {"messages": [{"role": "user", "content": "Q"}]}}) + "\n")
    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps({"custom_id": "r1", "response": {"status_code": 200, "body": {
        "model": "m", "choices": [{"message": {"content": "A"}, "finish_reason": "stop"}]}}}) + "\n")
    assert "imported 1" in run("import_outputs", str(output), "--project", project.slug, "--batch-input", str(requests))
    assert Completion.objects.get().source == "m"


def test_freeze_and_export(project, tmp_path):
    curate(project, ["A", "B"], ranking=[0, 1])
    output = run("freeze_dataset", "--project", project.slug, "--heldout-fraction", "0", "--seed", "3")
    version = DatasetVersion.objects.get()
    assert f"id {version.pk} hash {version.content_hash}" in output and version.seed == 3
    out = tmp_path / "sft.jsonl"
    assert "Wrote 1 sft lines" in run("export_dataset", str(version.pk), "--format", "sft", "--split", "train", "--out", str(out))
    assert json.loads(out.read_text())["messages"][-1] == {"role": "assistant", "content": "A"}
    with pytest.raises(CommandError, match="No dataset version"):
        run("export_dataset", "999", "--format", "sft", "--out", str(out))


def test_freeze_with_nothing_approved_fails(project):
    with pytest.raises(CommandError, match="Nothing to freeze"):
        run("freeze_dataset", "--project", project.slug)


def test_load_demo_is_idempotent(monkeypatch):
    monkeypatch.setenv("DISTILLERY_ADMIN_USER", "demo-admin")
    admin = UserFactory(username="demo-admin", is_staff=True, is_superuser=True)
    first = run("load_demo")
    project = Project.objects.get(slug="demo")
    assert project.name == "Demo: SmolLM2 distillation" and project.system_prompt and project.guidelines
    assert Membership.objects.get(project=project, user=admin).role == "curator"
    prompts, completions = Prompt.objects.filter(project=project).count(), Completion.objects.count()
    assert prompts >= 24 and completions > prompts and "imported" in first
    assert Completion.objects.filter(finish_reason="length").exists()
    run("load_demo")
    assert (Prompt.objects.count(), Completion.objects.count(), ImportJob.objects.count()) == (prompts, completions, 1)
    assert Project.objects.filter(slug="demo").count() == 1
