"""Evaluation services and selectors against the real database (no worker, no model)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from curation.models import Flag, JobStatus, Prompt, Review, Teacher
from curation.selectors.access import SERVER_SHELL
from curation.services.trust import server_resource_register
from evaluation import selectors, services
from evaluation.models import EvaluationRun, EvaluationSample
from tests.evaluation.helpers import finished_run, make_heldout_version, sft_records
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(project):
    return make_heldout_version(project, sft_records())


@pytest.fixture
def teacher(project, tmp_path):
    (tmp_path / "teacher").mkdir()
    return Teacher.objects.create(project=project, name="big", kind=Teacher.Kind.LOCAL, model_path=str(tmp_path / "teacher"))


@pytest.fixture
def student_dir(tmp_path):
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "config.json").write_text("{}")
    server_resource_register(actor=SERVER_SHELL, kind="model", name="student", path=str(tmp_path / "student"))
    return tmp_path / "student"


def test_create_resolves_models_and_queues_on_commit(project, version, teacher, student_dir, curator,
                                                     django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr("evaluation.tasks.evaluation_run.delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.evaluation_run_create(
            project=project, created_by=curator, dataset_version=version[0],
            models=[{"teacher_id": teacher.pk}, {"kind": "hf", "path": str(student_dir), "label": "small"}],
            options={"limit": 3, "batch_size": 4},
        )
    assert queued == [run.pk]
    assert run.tasks == ["heldout"] and run.status == JobStatus.QUEUED
    assert run.options == {"apply_chat_template": True, "batch_size": 4, "max_gen_toks": 256, "limit": 3,
                           "fidelity": True, "speed_batch_size": 8, "speed_new_tokens": 64, "references": "curated"}
    assert [(m["label"], m["role"], m["kind"]) for m in run.models_spec] == [
        ("big", "teacher", "hf"), ("small", "student", "hf")]
    assert run.teacher_label == "big" and run.student_labels == ["small"]


def test_api_and_gguf_teachers_resolve(project, tmp_path):
    api = Teacher.objects.create(project=project, name="remote", kind=Teacher.Kind.OPENAI,
                                 base_url="http://vllm:8000/v1/", model_name="m", api_key_env="VLLM_KEY")
    spec = services._resolve_model(project, {"teacher_id": api.pk}, None)
    assert (spec["kind"], spec["path"], spec["api_model"], spec["api_key_env"]) == (
        "api", "http://vllm:8000/v1/chat/completions", "m", "VLLM_KEY")
    gguf = Teacher.objects.create(project=project, name="q", kind=Teacher.Kind.LOCAL, model_path=str(tmp_path),
                                  gguf_file="x.gguf")
    with pytest.raises(ValidationError, match="The model of teacher q is not at"):
        services._resolve_model(project, {"teacher_id": gguf.pk}, None)
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    spec = services._resolve_model(project, {"teacher_id": gguf.pk}, None)
    assert (spec["kind"], spec["path"]) == ("gguf", str(tmp_path / "x.gguf"))


@pytest.mark.parametrize("models, tasks, options, message", [
    ([], None, None, "at least one model"),
    ([{"kind": "hf", "path": "/nonexistent/model"}], None, None, "Pick a model an operator registered"),
    ([{"teacher_id": "1; drop"}], None, None, "must be a whole number"),
    ([{"teacher_id": 999999}], None, None, "does not exist"),
    ([{"training_run_id": 999999}], None, None, "does not exist"),
    ([{"kind": "api", "path": "http://x/v1/chat/completions"}], None, None, "api_model"),
    ("two-same", None, None, "same label"),
    ("two-teachers", None, None, "one teacher"),
    ("ok", ["  "], None, "at least one task"),
    ("ok", None, {"batch_size": 0}, "batch_size must be"),
    ("ok", None, {"limit": -1}, "limit must be"),
    ("ok", None, {"temperature": 1}, "Unknown options"),
])
def test_create_refuses_bad_input(project, version, student_dir, models, tasks, options, message):
    one = {"kind": "hf", "path": str(student_dir)}
    models = {"two-same": [one, one], "two-teachers": [{**one, "role": "teacher", "label": "a"},
                                                       {**one, "role": "teacher", "label": "b"}],
              "ok": [one]}.get(models, models) if isinstance(models, str) else models
    with pytest.raises(ValidationError, match=message):
        services.evaluation_run_create(project=project, created_by=None, dataset_version=version[0], models=models,
                                       tasks=tasks, options=options, enqueue=False)


def test_heldout_needs_a_version_of_this_project(project, student_dir):
    other_version, _ = make_heldout_version(ProjectFactory(), sft_records()[:1])
    model = [{"kind": "hf", "path": str(student_dir)}]
    with pytest.raises(ValidationError, match="held-out task needs a dataset version"):
        services.evaluation_run_create(project=project, created_by=None, models=model, tasks=["heldout"], enqueue=False)
    with pytest.raises(ValidationError, match="another project"):
        services.evaluation_run_create(project=project, created_by=None, models=model, dataset_version=other_version,
                                       enqueue=False)


def test_training_run_evaluate_pairs_its_teacher_and_student(project, version, teacher, student_dir, tmp_path):
    from training.models import TrainingRun

    artifact = tmp_path / "run"
    artifact.mkdir()
    (artifact / "model").symlink_to(student_dir)  # where training exports its student: <artifact_dir>/model
    training = TrainingRun.objects.create(dataset_version=version[0], teacher=teacher, status=JobStatus.SUCCEEDED,
                                          artifact_dir=str(artifact), name="sft-1")
    run = services.training_run_evaluate(training_run=training, created_by=None)
    assert [(m["label"], m["role"]) for m in run.models_spec] == [("big", "teacher"), ("sft-1", "student")]
    assert run.models_spec[1]["path"] == str(artifact / "model") and run.dataset_version == version[0]
    unfinished = TrainingRun.objects.create(dataset_version=version[0], teacher=teacher, status=JobStatus.RUNNING)
    with pytest.raises(ValidationError, match="no exported student model"):
        services.training_run_evaluate(training_run=unfinished, created_by=None)


def test_cancel_and_stale_runs(project):
    queued = EvaluationRun.objects.create(project=project)
    assert services.evaluation_run_cancel(run=queued).status == JobStatus.CANCELLED
    with pytest.raises(ValidationError, match="already finished"):
        services.evaluation_run_cancel(run=queued)
    running = EvaluationRun.objects.create(project=project, status=JobStatus.RUNNING, heartbeat_at=timezone.now(),
                                           worker="elsewhere:1")
    assert services.evaluation_run_cancel(run=running).cancel_requested is True
    # A run whose worker went silent is cancelled at once, not left "running" until the sweep.
    stale = EvaluationRun.objects.create(project=project, status=JobStatus.RUNNING, worker="elsewhere:2",
                                         heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert services.evaluation_run_cancel(run=stale).status == JobStatus.CANCELLED
    # A run that is not queued any more is not claimed again by a late or redelivered task.
    assert services.evaluation_run_execute(run_id=stale.pk) is None


def test_comparison_retention_and_ratios(project, version):
    run = finished_run(project, *version)
    comparison = selectors.run_comparison(run)
    rows = {(r.task, r.metric): r for r in comparison.metrics}
    assert rows[("heldout_gen", "exact_match")].students[0].retention == 0.5
    # Lower is better: the teacher's perplexity over the student's, so worse is still below 100%.
    assert rows[("heldout_ppl", "word_perplexity")].students[0].retention == 0.5
    student = comparison.models[1]
    assert (student.params_ratio, student.size_ratio, student.speed_ratio, student.latency_ratio) == (0.4, 0.4, 2.5, 0.4)
    assert len(comparison.chart["bars"]) == 3 and all(bar["worse"] for bar in comparison.chart["bars"])


def test_regressions_are_the_items_the_student_lost(project, version):
    run = finished_run(project, *version)
    prompts = version[1]
    items = selectors.regressions(run, student="student")
    assert [i.doc_id for i in items] == [5, 3, 4]  # largest gap first
    assert items[0].prompt_id == prompts[5].pk and items[0].teacher_response == "answer 5"
    assert items[0].student_response == "student says 5" and items[0].gap == 1.0
    assert [i.doc_id for i in selectors.regressions(run, student="student", sort="item")] == [3, 4, 5]
    # On perplexity (lower is better) the student is worse on every item but the first.
    ppl = selectors.regressions(run, student="student", task="heldout_ppl", metric="word_perplexity")
    assert [i.doc_id for i in ppl] == [5, 4, 3, 2, 1]
    assert ppl[0].student_response == "student says 5"  # outputs come from the generation task
    assert selectors.regressions(run, student="nobody") == []


def test_send_back_requeues_and_flags_the_prompts(project, version, curator):
    run = finished_run(project, *version)
    prompts = version[1]
    reviewer = UserFactory()
    Review.objects.create(prompt=prompts[5], annotator=reviewer, decision="approve")
    count = services.evaluation_items_send_back(run=run, doc_ids=[5, 3], actor=curator, student_label="student")
    assert count == 2
    flags = Flag.objects.filter(kind=services.REGRESSION_FLAG)
    assert sorted(f.prompt_id for f in flags) == sorted([prompts[5].pk, prompts[3].pk])
    assert all(f"evaluation run #{run.pk}" in f.detail and "student" in f.detail for f in flags)
    assert Review.objects.get(prompt=prompts[5]).superseded is True
    assert Prompt.objects.get(pk=prompts[5].pk).status != "approved"
    sent = EvaluationSample.objects.filter(run=run, sent_back_at__isnull=False)
    assert set(sent.values_list("doc_id", flat=True)) == {3, 5}
    assert selectors.regressions(run, student="student")[0].sent_back_at is not None


def test_send_back_refuses_unfinished_runs_and_empty_selection(project, version, curator):
    run = finished_run(project, *version)
    with pytest.raises(ValidationError, match="from curation"):
        services.evaluation_items_send_back(run=run, doc_ids=[99], actor=curator)
    EvaluationRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING)
    run.refresh_from_db()
    with pytest.raises(ValidationError, match="finished"):
        services.evaluation_items_send_back(run=run, doc_ids=[5], actor=curator)


def test_history_lists_finished_runs_oldest_first(project, version):
    first = finished_run(project, *version)
    EvaluationRun.objects.create(project=project, status=JobStatus.FAILED)
    second = finished_run(project, *version)
    history = selectors.project_history(project)
    assert [h["run"].pk for h in history] == [first.pk, second.pk]
    assert history[0]["teacher_value"] == 1.0 and history[0]["best_retention"] == pytest.approx(3.7 / 6)


def test_fidelity_and_fixed_length_speed_rows(project, version):
    run = finished_run(project, *version)
    summary = {"examples": 6, "tokens": 40, "kl": 0.5, "kl_stderr": 0.1, "top1": 0.7, "top1_stderr": 0.05,
               "ce": 1.2, "ce_stderr": 0.2, "teacher_ce": 0.9}
    run.fidelity = {"student": {"summary": summary, "per_example": []}}
    point = {"batch_size": 1, "new_tokens": 64, "latency_s": 1.0, "tokens_per_second": 64.0}
    run.speed = {"teacher": {"threads": 1, "points": [point]},
                 "student": {"threads": 1, "points": [{**point, "tokens_per_second": 160.0}]}}
    comparison = selectors.run_comparison(run)
    [row] = comparison.fidelity
    assert row.label == "student" and [v["key"] for v in row.values] == ["top1", "kl", "ce"]
    assert row.values[0]["value"] == 0.7 and row.values[0]["stderr"] == 0.05 and row.teacher_ce == 0.9
    speed = {r.label: r for r in comparison.speed}
    assert speed["student"].points[0]["ratio"] == 2.5 and speed["teacher"].points[0]["ratio"] is None
