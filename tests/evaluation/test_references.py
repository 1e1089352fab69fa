"""Greedy teacher references: a job on the shared lifecycle; runs that use them wait for it, then score them."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from curation.models import JobStatus, Teacher
from evaluation import services
from evaluation.models import EvaluationRun, ReferenceSet
from evaluation.references import reference_set_run, write_greedy_heldout
from curation.services.trust import SERVER_SHELL, server_resource_register
from tests.evaluation.helpers import make_heldout_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(project, tiny_pair):
    version, prompts = make_heldout_version(project, tiny_pair.records)
    teacher = Teacher.objects.create(project=project, name="tiny-teacher", kind=Teacher.Kind.LOCAL,
                                     model_path=str(tiny_pair.teacher))
    server_resource_register(actor=SERVER_SHELL, kind="model", name="tiny-student", path=str(tiny_pair.student))
    models = [{"teacher_id": teacher.pk}, {"kind": "hf", "path": "tiny-student", "label": "student"}]
    return version, teacher, models


def test_a_run_on_greedy_references_waits_for_them_and_is_queued_by_their_job(
        setup, django_capture_on_commit_callbacks, tmp_path):
    version, teacher, models = setup
    with django_capture_on_commit_callbacks() as queued:
        run = services.evaluation_run_create(project=version.project, created_by=None, models=models,
                                             dataset_version=version,
                                             options={"references": "teacher_greedy", "max_gen_toks": 16})
    refs = ReferenceSet.objects.get()
    assert run.options["reference_set"] == refs.pk and refs.total == 6
    assert len(queued) == 1  # the references' job only: the run waits
    with django_capture_on_commit_callbacks() as queued:
        assert reference_set_run(job_id=refs.pk) == JobStatus.SUCCEEDED
    refs.refresh_from_db()
    assert refs.done == 6 and all(isinstance(text, str) for text in refs.references.values())
    assert len(queued) == 1  # now the waiting run goes to the queue
    rows = [json.loads(line) for line in write_greedy_heldout(refs, tmp_path / "h.jsonl").read_text().splitlines()]
    assert [r["messages"][-1]["content"] for r in rows] == [refs.references[str(r["id"])] for r in rows]
    # A second run on the same version and teacher reuses the stored references and starts at once.
    with django_capture_on_commit_callbacks() as queued:
        again = services.evaluation_run_create(project=version.project, created_by=None, models=models,
                                               dataset_version=version,
                                               options={"references": "teacher_greedy", "max_gen_toks": 16})
    assert again.options["reference_set"] == refs.pk and len(queued) == 1 and ReferenceSet.objects.count() == 1


def test_greedy_references_need_a_registered_teacher(setup, tiny_pair):
    version, _, _ = setup
    with pytest.raises(ValidationError, match="registered teacher"):
        services.evaluation_run_create(project=version.project, created_by=None, dataset_version=version,
                                       models=[{"kind": "hf", "path": "tiny-student", "label": "s"}],
                                       options={"references": "teacher_greedy"}, enqueue=False)
    with pytest.raises(ValidationError, match="references must be one of"):
        services.evaluation_run_create(project=version.project, created_by=None, dataset_version=version,
                                       models=[{"kind": "hf", "path": "tiny-student", "label": "s"}],
                                       options={"references": "sampled"}, enqueue=False)


@pytest.mark.slow
def test_the_teacher_scores_one_against_its_own_greedy_references(setup):
    version, _, models = setup
    run = services.evaluation_run_create(project=version.project, created_by=None, models=models,
                                         dataset_version=version, enqueue=False,
                                         options={"references": "teacher_greedy", "max_gen_toks": 16, "batch_size": 2,
                                                  "fidelity": False})
    reference_set_run(job_id=run.options["reference_set"])
    assert services.evaluation_run_execute(run_id=run.pk) == JobStatus.SUCCEEDED
    run = EvaluationRun.objects.get(pk=run.pk)
    assert run.results["tiny-teacher"]["metrics"]["heldout_gen"]["exact_match"]["value"] == 1.0
