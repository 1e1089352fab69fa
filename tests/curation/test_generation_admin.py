"""The admin doors: start generation from the project list, cancel and resume jobs."""

from __future__ import annotations

import pytest

from curation.models import GenerationJob, JobStatus, Teacher
from curation.services import generation as svc
from tests.factories import PromptFactory
from curation.selectors.access import SERVER_SHELL

pytestmark = pytest.mark.django_db


def test_project_action_asks_for_the_teacher_then_queues_a_job(client, admin_user, project):
    teacher = svc.teacher_register(actor=SERVER_SHELL, name="tiny", kind=Teacher.Kind.LOCAL, model_path="models/tiny")
    PromptFactory.create_batch(3, project=project)
    client.force_login(admin_user)
    changelist = "/admin/curation/project/"
    chosen = {"action": "generate_candidates", "_selected_action": [project.pk]}
    page = client.post(changelist, chosen)
    assert page.status_code == 200 and b"Queue generation" in page.content
    done = client.post(changelist, {**chosen, "apply": "1", "teacher": teacher.pk, "n": 2,
                                    "temperature": 0.7, "max_new_tokens": 64}, follow=True)
    assert b"queued for 3 prompts" in done.content
    job = GenerationJob.objects.get(project=project)
    assert (job.teacher, job.n, job.max_new_tokens, job.created_by) == (teacher, 2, 64, admin_user)


def test_job_actions_cancel_and_resume(client, admin_user, project):
    teacher = svc.teacher_register(actor=SERVER_SHELL, name="tiny", kind=Teacher.Kind.LOCAL, model_path="models/tiny")
    job = svc.generation_job_create(project=project, teacher=teacher, enqueue=False)
    client.force_login(admin_user)
    changelist = "/admin/curation/generationjob/"
    client.post(changelist, {"action": "cancel_jobs", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    again = client.post(changelist, {"action": "cancel_jobs", "_selected_action": [job.pk]}, follow=True)
    assert b"already finished" in again.content
    client.post(changelist, {"action": "resume_jobs", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
