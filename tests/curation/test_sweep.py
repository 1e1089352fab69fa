"""The periodic sweep: work whose worker died does not stay "running"."""

from datetime import timedelta

import pytest
from django.utils import timezone

from curation.models import GenerationJob, ImportJob, JobStatus, Teacher
from curation.tasks import sweep_stale_jobs
from evaluation.models import EvaluationRun


@pytest.mark.django_db
def test_sweep_fails_jobs_without_a_recent_heartbeat(project):
    long_ago = timezone.now() - timedelta(hours=3)
    teacher = Teacher.objects.create(project=project, name="t", kind=Teacher.Kind.LOCAL, model_path="/nowhere")
    lost = GenerationJob.objects.create(project=project, teacher=teacher, status=JobStatus.RUNNING, heartbeat_at=long_ago)
    alive = GenerationJob.objects.create(
        project=project, teacher=teacher, status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )
    lost_eval = EvaluationRun.objects.create(project=project, status=JobStatus.RUNNING, heartbeat_at=long_ago)
    lost_import = ImportJob.objects.create(project=project, file="x.jsonl", status=JobStatus.RUNNING)
    ImportJob.objects.filter(pk=lost_import.pk).update(started_at=long_ago)

    counts = sweep_stale_jobs()

    assert counts == {"imports": 1, "generation": 1, "evaluation": 1}
    lost.refresh_from_db(), alive.refresh_from_db(), lost_eval.refresh_from_db(), lost_import.refresh_from_db()
    assert lost.status == JobStatus.FAILED and "worker" in lost.error
    assert alive.status == JobStatus.RUNNING
    assert lost_eval.status == JobStatus.FAILED
    assert lost_import.status == JobStatus.FAILED
