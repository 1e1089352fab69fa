"""The command-line doors: ``generate``, ``build_demo_model`` and the demo teacher in ``load_demo``."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from curation.models import Completion, GenerationJob, JobStatus, Teacher
from curation.services import generation as svc
from curation.teachers import demo_model
from tests.curation.test_teachers_local import one_torch_thread  # noqa: F401 - an autouse fixture
from tests.factories import PromptFactory
from tests.tiny import save_tiny_model
from curation.selectors.access import SERVER_SHELL

pytestmark = pytest.mark.django_db


def test_generate_inline_answers_the_pending_prompts(project, tmp_path, capsys):
    svc.teacher_register(actor=SERVER_SHELL, name="tiny", kind=Teacher.Kind.LOCAL, model_path=str(save_tiny_model(tmp_path / "m")),
                         project=project)
    PromptFactory.create_batch(3, project=project)
    call_command("generate", "--project", project.slug, "--teacher", "tiny", "--n", "2",
                 "--max-new-tokens", "4", "--inline")
    job = GenerationJob.objects.get(project=project)
    assert (job.status, job.done, job.n, job.max_new_tokens) == (JobStatus.SUCCEEDED, 3, 2, 4)
    assert Completion.objects.filter(prompt__project=project).count() == 6
    assert f"Job #{job.pk} succeeded: 3/3 prompts" in capsys.readouterr().out


def test_generate_queues_for_the_worker_and_reports_bad_names(project, settings):
    settings.TEACHER_ALLOWED_HOSTS = ["127.0.0.1"]
    svc.teacher_register(actor=SERVER_SHELL, name="remote", kind=Teacher.Kind.OPENAI, base_url="http://127.0.0.1:9/v1",
                         model_name="m")
    call_command("generate", "--project", project.slug, "--teacher", "remote", "--all")
    job = GenerationJob.objects.get(project=project)
    assert (job.status, job.selection) == (JobStatus.QUEUED, {"mode": "all"})
    with pytest.raises(CommandError, match="still queued"):
        call_command("generate", "--project", project.slug, "--teacher", "remote")
    with pytest.raises(CommandError, match="No teacher named 'nope'"):
        call_command("generate", "--project", project.slug, "--teacher", "nope")
    with pytest.raises(CommandError, match="No project"):
        call_command("generate", "--project", "nope", "--teacher", "remote")


def test_build_demo_model_skips_a_built_folder(tmp_path, settings, monkeypatch, capsys):
    settings.DATA_DIR = tmp_path
    folder = demo_model.demo_model_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(demo_model, "fetch_demo_gguf", lambda root=None: pytest.fail("nothing to fetch"))
    call_command("build_demo_model")
    assert "already built" in capsys.readouterr().out


def test_load_demo_registers_the_demo_teacher_when_its_model_is_built(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    call_command("load_demo")
    assert not Teacher.objects.exists()
    folder = demo_model.demo_model_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    call_command("load_demo")
    teacher = Teacher.objects.get(name=demo_model.DEMO_MODEL_NAME)
    assert teacher.project.slug == "demo"
    assert svc.teacher_client(teacher).path == folder
