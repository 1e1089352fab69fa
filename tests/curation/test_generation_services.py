"""Generation services in-process: registering teachers, queuing, running, cancelling, resuming."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from curation.models import Completion, GenerationJob, JobStatus, Teacher
from curation.services import generation as svc
from curation.teachers import Candidate, PromptResult, TeacherError
from tests.curation.test_teachers_local import one_torch_thread  # noqa: F401 - an autouse fixture
from tests.factories import ProjectFactory, PromptFactory
from tests.tiny import save_tiny_model
from curation.selectors.access import SERVER_SHELL

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-teacher"))


@pytest.fixture
def local_teacher(tiny_model_dir):
    return svc.teacher_register(actor=SERVER_SHELL, name="tiny", kind=Teacher.Kind.LOCAL, model_path=str(tiny_model_dir),
                                model_name="tiny-llama", default_params={"batch_size": 4})


class ScriptedClient:
    """A teacher client answering instantly; ``on_yield`` runs before each result is handed out."""

    source = "scripted"

    def __init__(self, on_yield=None, fail_after: int | None = None):
        self.on_yield = on_yield or (lambda index: None)
        self.fail_after = fail_after
        self.closed = False

    def load(self) -> None:
        pass

    def generate(self, prompts, params):
        try:
            for index, messages in enumerate(prompts):
                if self.fail_after is not None and index >= self.fail_after:
                    raise TeacherError("the teacher went away")
                self.on_yield(index)
                yield PromptResult(index=index, candidates=[
                    Candidate(text=f"{messages[-1]['content']} #{k}", finish_reason="stop", completion_tokens=3)
                    for k in range(params.n)
                ])
        finally:
            self.closed = True


def test_register_validates_and_updates_by_name(tiny_model_dir, settings):
    settings.TEACHER_ALLOWED_HOSTS = ["h"]  # a host on the operator's network, e.g. a compose service
    with pytest.raises(ValidationError, match="model folder"):
        svc.teacher_register(actor=SERVER_SHELL, name="x", kind=Teacher.Kind.LOCAL)
    with pytest.raises(ValidationError, match="NAME of an environment variable"):
        svc.teacher_register(actor=SERVER_SHELL, name="x", kind=Teacher.Kind.OPENAI, base_url="http://h/v1", model_name="m",
                             api_key_env="sk-live-1234")
    with pytest.raises(ValidationError, match="Unknown settings: colour"):
        svc.teacher_register(actor=SERVER_SHELL, name="x", kind=Teacher.Kind.LOCAL, model_path="m", default_params={"colour": 1})
    first = svc.teacher_register(actor=SERVER_SHELL, name="api", kind=Teacher.Kind.OPENAI, base_url="http://h/v1", model_name="a",
                                 api_key_env="DISTILLERY_KEY_TEACHER")
    again = svc.teacher_register(actor=SERVER_SHELL, name="api", kind=Teacher.Kind.OPENAI, base_url="http://h/v1", model_name="b")
    assert again.pk == first.pk and again.model_name == "b"


def test_create_takes_defaults_and_refuses_bad_input(local_teacher):
    project = ProjectFactory(candidates_per_prompt=3, system_prompt="Answer briefly.")
    PromptFactory.create_batch(2, project=project)
    job = svc.generation_job_create(project=project, teacher=local_teacher, max_new_tokens=16)
    assert (job.n, job.system_prompt, job.max_new_tokens, job.total) == (3, "Answer briefly.", 16, 2)
    with pytest.raises(ValidationError, match="still queued"):
        svc.generation_job_create(project=project, teacher=local_teacher)
    other = ProjectFactory()
    foreign = svc.teacher_register(actor=SERVER_SHELL, name="theirs", kind=Teacher.Kind.LOCAL, model_path="m", project=other)
    with pytest.raises(ValidationError, match="another project"):
        svc.generation_job_create(project=project, teacher=foreign)
    with pytest.raises(ValidationError, match="greedy"):
        svc.generation_job_create(project=other, teacher=local_teacher, n=2, temperature=0)
    with pytest.raises(ValidationError, match="ids"):
        svc.generation_job_create(project=other, teacher=local_teacher, selection={"mode": "ids", "ids": []})


def test_run_stores_completions_and_progress_then_a_rerun_skips_them(local_teacher):
    project = ProjectFactory()
    prompts = PromptFactory.create_batch(5, project=project)
    job = svc.generation_job_create(project=project, teacher=local_teacher, n=2, max_new_tokens=6, seed=3)
    assert svc.generation_job_run(job_id=job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.error) == (JobStatus.SUCCEEDED, 5, 5, "")
    assert job.generated_tokens > 0 and job.tokens_per_second > 0 and job.finished_at
    completions = Completion.objects.filter(prompt__project=project)
    assert {p.completions.count() for p in prompts} == {2}
    first = completions.first()
    assert first.source == "tiny-llama"
    assert first.params["max_new_tokens"] == 6 and first.params["generation_job"] == job.pk
    assert first.finish_reason in {"stop", "length"} and first.logprobs is None
    assert svc.generation_job_run(job_id=job.pk) is None  # a second delivery does not claim it again

    again = svc.generation_job_create(project=project, teacher=local_teacher, n=2)
    assert svc.generation_job_run(job_id=again.pk) == JobStatus.SUCCEEDED
    again.refresh_from_db()
    assert (again.done, again.total, again.skipped) == (0, 0, 5)  # skipped prompts are not counted as done
    assert completions.count() == 10


def test_logprobs_are_stored_when_the_teacher_asks(tiny_model_dir):
    teacher = svc.teacher_register(actor=SERVER_SHELL, name="lp", kind=Teacher.Kind.LOCAL, model_path=str(tiny_model_dir),
                                   default_params={"logprobs": True})
    project = ProjectFactory()
    PromptFactory(project=project)
    job = svc.generation_job_create(project=project, teacher=teacher, n=1, max_new_tokens=4)
    svc.generation_job_run(job_id=job.pk)
    completion = Completion.objects.get(prompt__project=project)
    assert len(completion.logprobs) == 4 and completion.finish_reason == "length"


def test_cancel_stops_between_prompts_and_resume_finishes(local_teacher, monkeypatch):
    project = ProjectFactory()
    PromptFactory.create_batch(4, project=project)
    job = svc.generation_job_create(project=project, teacher=local_teacher, n=2)

    def cancel_during_second(index):
        if index == 1:
            svc.generation_job_cancel(job=GenerationJob.objects.get(pk=job.pk))

    client = ScriptedClient(on_yield=cancel_during_second)
    monkeypatch.setattr(svc, "teacher_client", lambda teacher: client)
    assert svc.generation_job_run(job_id=job.pk) == JobStatus.CANCELLED
    assert client.closed
    job.refresh_from_db()
    assert (job.status, job.done, job.cancel_requested) == (JobStatus.CANCELLED, 2, True)
    assert Completion.objects.filter(prompt__project=project).count() == 4

    monkeypatch.setattr(svc, "teacher_client", lambda teacher: ScriptedClient())
    svc.generation_job_resume(job=job)
    assert svc.generation_job_run(job_id=job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.skipped, job.cancel_requested) == (JobStatus.SUCCEEDED, 2, 2, 2, False)
    assert Completion.objects.filter(prompt__project=project).count() == 8


def test_teacher_error_fails_the_job_with_its_message(local_teacher, monkeypatch):
    project = ProjectFactory()
    PromptFactory.create_batch(3, project=project)
    monkeypatch.setattr(svc, "teacher_client", lambda teacher: ScriptedClient(fail_after=1))
    job = svc.generation_job_create(project=project, teacher=local_teacher, n=1)
    assert svc.generation_job_run(job_id=job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert (job.error, job.done) == ("the teacher went away", 1)
    with pytest.raises(ValidationError, match="already finished"):
        svc.generation_job_cancel(job=job)


def test_cancel_of_a_queued_job_is_immediate(local_teacher):
    project = ProjectFactory()
    job = svc.generation_job_create(project=project, teacher=local_teacher)
    assert svc.generation_job_cancel(job=job).status == JobStatus.CANCELLED
    assert svc.generation_job_run(job_id=job.pk) is None


def test_a_lost_job_is_requeued_by_the_sweep_and_a_second_job_waits_for_it(local_teacher):
    from curation.jobs.services import jobs_sweep

    project = ProjectFactory()
    job = svc.generation_job_create(project=project, teacher=local_teacher, enqueue=False)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, attempts=1, worker="elsewhere:1", heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert jobs_sweep()["generation"] == {JobStatus.QUEUED: [job.pk]}
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and "prompts that already have their candidates" in job.error
    with pytest.raises(ValidationError, match="still queued"):
        svc.generation_job_create(project=project, teacher=local_teacher)


@pytest.mark.django_db(transaction=True)
def test_heartbeat_is_written_from_a_thread_while_work_blocks(local_teacher):
    import time

    from curation.jobs.heartbeat import Heartbeat

    job = svc.generation_job_create(project=ProjectFactory(), teacher=local_teacher, enqueue=False)
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    with Heartbeat(GenerationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING), every=0.05):
        time.sleep(0.5)  # the main thread is busy, as in one long batch
    job.refresh_from_db()
    assert job.heartbeat_at is not None and timezone.now() - job.heartbeat_at < timedelta(seconds=5)


def test_selection_modes_pick_the_prompts(local_teacher):
    from curation.models import Prompt, Tag

    project = ProjectFactory()
    pending = PromptFactory.create_batch(2, project=project)
    approved = PromptFactory(project=project, status=Prompt.Status.APPROVED, text="Explain tides")
    Tag.objects.create(prompt=approved, name="science")

    def total(selection):
        job = svc.generation_job_create(project=project, teacher=local_teacher, selection=selection, enqueue=False)
        job.delete()
        return job.total

    assert total(None) == 2
    assert total({"mode": "all"}) == 3
    assert total({"mode": "ids", "ids": [pending[0].pk, approved.pk]}) == 2
    assert total({"mode": "filter", "status": "approved"}) == 1
    assert total({"mode": "filter", "tag": "science", "search": "tides"}) == 1
    with pytest.raises(ValidationError, match="Unknown status"):
        total({"mode": "filter", "status": "golden"})


def test_a_limit_fixes_the_first_n_prompts_and_a_browse_filter_selects_as_browse_does(local_teacher):
    project = ProjectFactory()
    prompts = [PromptFactory(project=project, text=f"capital city {i}") for i in range(4)]
    PromptFactory(project=project, text="something else")
    job = svc.generation_job_create(project=project, teacher=local_teacher, selection={"mode": "pending", "limit": 2},
                                    enqueue=False)
    assert job.selection["mode"] == "ids" and job.selection["ids"] == [prompts[0].pk, prompts[1].pk]
    assert job.total == 2
    job.status = JobStatus.CANCELLED
    job.save()
    filtered = svc.generation_job_create(project=project, teacher=local_teacher,
                                         selection={"mode": "filter", "browse": {"q": "capital"}}, enqueue=False)
    assert filtered.total == 4
    with pytest.raises(ValidationError):
        svc.generation_job_create(project=project, teacher=local_teacher, selection={"mode": "all", "limit": 0})
