"""Evaluation runs through a real Celery worker process, tiny fitted models, the real database."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from curation.models import Flag, JobStatus, Teacher
from curation.selectors.access import SERVER_SHELL
from curation.services.trust import server_resource_register
from evaluation.models import EvaluationRun, EvaluationSample
from tests.conftest import wait_for
from tests.evaluation.helpers import make_heldout_version

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _finished(run_id: int) -> EvaluationRun | None:
    run = EvaluationRun.objects.get(pk=run_id)
    return run if run.status in JobStatus.finished() else None


def test_heldout_run_through_the_worker_then_regressions_go_back_to_curation(
        celery_worker, client, project, curator, tiny_pair):
    version, prompts = make_heldout_version(project, tiny_pair.records)
    teacher = Teacher.objects.create(project=project, name="tiny-teacher", kind=Teacher.Kind.LOCAL,
                                     model_path=str(tiny_pair.teacher))
    server_resource_register(actor=SERVER_SHELL, kind="model", name="tiny-student", path=str(tiny_pair.student))
    client.force_login(curator)
    response = client.post("/api/v1/evaluation-runs/", {  # the curator picks the operator's registered student
        "project": project.slug, "dataset_version": version.number, "name": "v1",
        "models": [{"teacher_id": teacher.pk}, {"kind": "hf", "path": "tiny-student", "label": "student"}],
        "options": {"batch_size": 2, "max_gen_toks": 24},
    }, content_type="application/json")
    assert response.status_code == 201, response.content
    run = wait_for(lambda: _finished(response.json()["id"]), timeout=300, message="the evaluation run")
    assert run.status == JobStatus.SUCCEEDED, run.error + celery_worker.log()[-3000:]

    # The held-out task YAML was generated from the frozen rows and scored.
    tasks_dir = Path(run.artifact_dir) / "models" / "00_tiny-teacher" / "tasks" / "heldout"
    assert {"heldout_gen.yaml", "heldout_ppl.yaml"} <= {p.name for p in tasks_dir.iterdir()}
    gen = {label: run.results[label]["metrics"]["heldout_gen"] for label in ("tiny-teacher", "student")}
    assert gen["tiny-teacher"]["exact_match"]["value"] == 1.0 and gen["student"]["exact_match"]["value"] == 0.5
    assert run.measurements["student"]["prompts"] == 6 and run.progress == 1.0

    samples = EvaluationSample.objects.filter(run=run, task="heldout_gen", model_label="student").order_by("doc_id")
    assert [s.prompt_id for s in samples] == [p.pk for p in prompts]

    # Fidelity (teacher-forced) and fixed-length speed came with the run: the half-fitted student diverges.
    fidelity = run.fidelity["student"]["summary"]
    assert fidelity["kl"] > 0 and fidelity["top1"] < 1.0 and fidelity["kl_stderr"] is not None
    assert len(run.fidelity["student"]["per_example"]) == 6
    assert {p["batch_size"] for p in run.speed["tiny-teacher"]["points"]} == {1, 8}
    assert all(p["new_tokens"] == 64 for p in run.speed["student"]["points"])
    page = client.get(reverse("evaluation:run_detail", args=[run.pk])).content.decode()
    assert page.index("Fidelity to the teacher") < page.index("Scores")

    results = client.get(f"/api/v1/evaluation-runs/{run.pk}/results/").json()
    assert list(results)[4:6] == ["fidelity", "speed"]
    assert results["fidelity"][0]["label"] == "student" and results["speed"][1]["points"][0]["ratio"] > 0
    em = next(r for r in results["metrics"] if (r["task"], r["metric"]) == ("heldout_gen", "exact_match"))
    assert em["students"][0]["retention"] == 0.5

    # The regression view lists exactly the items the student never learnt, and sends them back.
    page = client.get(reverse("evaluation:run_examples", args=[run.pk]), {"metric": "exact_match"})
    lost = [item.prompt_id for item in page.context["items"]]
    assert sorted(lost) == sorted(p.pk for p in prompts[3:])
    client.post(reverse("evaluation:run_send_back", args=[run.pk]),
                {"doc_ids": [i.doc_id for i in page.context["items"]], "student": "student"})
    flagged = Flag.objects.filter(kind="eval-regression", detail__contains=f"evaluation run #{run.pk}")
    assert sorted(flagged.values_list("prompt_id", flat=True)) == sorted(lost)


def test_unreachable_builtin_task_fails_fast_with_a_clear_message(celery_worker, project, tiny_pair):
    from evaluation.services import evaluation_run_create

    run = evaluation_run_create(project=project, created_by=None, actor=SERVER_SHELL, tasks=["hellaswag"],
                                models=[{"kind": "hf", "path": str(tiny_pair.teacher), "label": "t"}])
    run = wait_for(lambda: _finished(run.pk), timeout=180, message="the failing run")
    assert run.status == JobStatus.FAILED
    assert run.error.startswith("Task 'hellaswag' cannot run here")
    assert "needs network access" in run.error and "local copy" in run.error
    assert not run.results and not EvaluationSample.objects.filter(run=run).exists()
