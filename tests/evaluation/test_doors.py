"""The other doors: the API's permissions and shapes, the admin action on training runs, the command."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from curation.models import JobStatus, ServerResource, Teacher
from evaluation.models import EvaluationRun
from tests.evaluation.helpers import finished_run, make_heldout_version, sft_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(project):
    return finished_run(project, *make_heldout_version(project, sft_records()))


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    ServerResource.objects.create(kind=ServerResource.Kind.MODEL, name="model", path=str(tmp_path / "model"))
    return tmp_path / "model"


def test_api_permissions(client, run, annotator, outsider, model_dir):
    api = "/api/v1/evaluation-runs/"
    assert client.get(api).status_code in (401, 403)
    client.force_login(outsider)
    assert client.get(api).json()["results"] == []
    assert client.get(f"{api}{run.pk}/results/").status_code == 404
    client.force_login(annotator)
    assert [r["id"] for r in client.get(api).json()["results"]] == [run.pk]
    assert client.get(f"{api}{run.pk}/samples/").status_code == 200
    assert client.post(f"{api}{run.pk}/send-back/", {"doc_ids": [5]}, content_type="application/json").status_code == 403
    assert client.post(f"{api}{run.pk}/cancel/").status_code == 403
    assert client.post(f"{api}{run.pk}/resume/").status_code == 403
    created = client.post(api, {"project": run.project.slug, "models": [{"kind": "hf", "path": str(model_dir)}],
                                "tasks": ["heldout"], "dataset_version": 1}, content_type="application/json")
    assert created.status_code == 403


def test_api_create_results_samples_and_send_back(client, run, curator, model_dir, django_capture_on_commit_callbacks,
                                                  monkeypatch):
    monkeypatch.setattr("evaluation.tasks.evaluation_run.delay", lambda pk: None)
    client.force_login(curator)
    api = "/api/v1/evaluation-runs/"
    body = {"project": run.project.slug, "dataset_version": 1, "models": [{"kind": "hf", "path": str(model_dir)}],
            "options": {"limit": 2}}
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(api, body, content_type="application/json")
    assert created.status_code == 201 and created.json()["status"] == "queued" and created.json()["tasks"] == ["heldout"]
    bad = client.post(api, {**body, "options": {"batch_size": "lots"}}, content_type="application/json")
    assert bad.status_code == 400 and "batch_size" in str(bad.json())
    missing = client.post(api, {**body, "dataset_version": 7}, content_type="application/json")
    assert missing.status_code == 400 and "no version 7" in str(missing.json())

    results = client.get(f"{api}{run.pk}/results/").json()
    assert results["teacher"] == "teacher" and results["students"] == ["student"]
    rouge = next(r for r in results["metrics"] if r["metric"] == "rougeL")
    assert rouge["teacher"]["value"] == 1.0 and rouge["students"][0]["label"] == "student"
    assert results["models"][1]["speed_ratio"] == 2.5

    page = client.get(f"{api}{run.pk}/samples/", {"model": "student", "task": "heldout_gen"}).json()
    assert [s["doc_id"] for s in page["results"]] == [0, 1, 2, 3, 4, 5]
    ranked = client.get(f"{api}{run.pk}/samples/", {"regressions_for": "student"}).json()
    assert [r["doc_id"] for r in ranked] == [5, 3, 4]
    sent = client.post(f"{api}{run.pk}/send-back/", {"doc_ids": [5], "student": "student"}, content_type="application/json")
    assert sent.json() == {"sent_back": 1}


def test_admin_action_evaluates_training_runs_against_their_teacher(client, admin_user, project, model_dir,
                                                                   django_capture_on_commit_callbacks, monkeypatch):
    from training.models import TrainingRun

    monkeypatch.setattr("evaluation.tasks.evaluation_run.delay", lambda pk: None)
    version, _ = make_heldout_version(project, sft_records())
    teacher = Teacher.objects.create(project=project, name="big", kind=Teacher.Kind.LOCAL, model_path=str(model_dir))
    done = TrainingRun.objects.create(dataset_version=version, teacher=teacher, status=JobStatus.SUCCEEDED,
                                      artifact_dir=str(model_dir.parent), name="kd-1")
    client.force_login(admin_user)
    url = reverse("admin:training_trainingrun_changelist")
    assert "evaluate_against_teacher" in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "evaluate_against_teacher", "_selected_action": [done.pk]}, follow=True)
    run = EvaluationRun.objects.get()
    assert [(m["label"], m["role"]) for m in run.models_spec] == [("big", "teacher"), ("kd-1", "student")]
    assert f"evaluation #{run.pk}" in response.content.decode()


def test_command_queues_and_refuses_bad_models(project, model_dir):
    with pytest.raises(CommandError, match="Cannot read the model"):
        call_command("evaluate", "--project", project.slug, "--models", "nonsense", "--tasks", "arc_easy")
    with pytest.raises(CommandError, match="No project"):
        call_command("evaluate", "--project", "nope", "--models", f"hf:{model_dir}", "--tasks", "arc_easy")
    call_command("evaluate", "--project", project.slug, "--models", f"teacher=hf:{model_dir}", f"small=hf:{model_dir}",
                 "--tasks", "arc_easy", "--limit", "5")
    run = EvaluationRun.objects.get()
    assert run.tasks == ["arc_easy"] and run.options["limit"] == 5 and run.teacher_label == "teacher"


def test_a_failed_run_is_resumed_from_its_page_and_the_api(client, run, curator, annotator, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    """Every door resumes: the page's button and the API (the admin has its action); finished runs are refused."""
    from django.utils.module_loading import import_string

    from curation.jobs.registry import kind_named

    sent = []
    monkeypatch.setattr(import_string(kind_named("evaluation").task), "delay", sent.append)
    page = reverse("evaluation:run_detail", args=[run.pk])
    client.force_login(curator)
    assert "Resume" not in client.get(page).content.decode()  # succeeded: nothing to resume
    assert client.post(f"/api/v1/evaluation-runs/{run.pk}/resume/").status_code == 400

    EvaluationRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED, error="lm-eval exited with code 1")
    assert "Resume (models already scored are kept)" in client.get(page).content.decode()
    client.force_login(annotator)
    assert client.post(reverse("evaluation:run_resume", args=[run.pk])).status_code == 403
    client.force_login(curator)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("evaluation:run_resume", args=[run.pk])).status_code == 302
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and run.error == "" and sent == [run.pk]
    assert run.results and run.samples.exists()  # the models already scored keep their results

    EvaluationRun.objects.filter(pk=run.pk).update(status=JobStatus.CANCELLED)
    with django_capture_on_commit_callbacks(execute=True):
        body = client.post(f"/api/v1/evaluation-runs/{run.pk}/resume/").json()
    assert body["status"] == JobStatus.QUEUED and sent == [run.pk, run.pk]
