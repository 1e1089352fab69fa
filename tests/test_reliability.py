"""Every kind of job survives kill -9: of its whole worker, and separately of the process doing its work.

A real Celery worker (prefork, one child, acks late) runs each job with tiny models; mid-job the test kills either
the worker's whole process group (then starts a worker again, as a supervisor would) or only the child doing the
work: the pool process for imports and generation, the `python -m training.ml` process for training, the lm-eval
process for evaluation. Each job must end succeeded by itself, with nothing done twice and nothing lost.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count

from curation.jobs.selectors import listening_workers
from curation.models import Completion, GenerationJob, ImportJob, JobStatus, PendingFlag, Prompt, Teacher
from curation.selectors.access import SERVER_SHELL
from curation.selectors.search import prompts_matching_text
from curation.services import generation as generation_svc
from curation.services.imports import import_job_create
from curation.services.trust import server_resource_register
from evaluation.models import EvaluationRun, EvaluationSample
from evaluation.services import evaluation_run_create
from tests.conftest import wait_for
from tests.evaluation.conftest import tiny_pair  # noqa: F401 - a session fixture shared with the evaluation tests
from tests.evaluation.helpers import make_heldout_version
from tests.factories import PromptFactory
from tests.tiny import save_tiny_model
from tests.training.conftest import FAST, make_version, tiny_teacher  # noqa: F401 - fixture
from training.models import TrainingRun
from training.services import training_run_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DONE_WITHIN = 240  # seconds from the kill to success, restart included, on 2 busy cores
IMPORT_RECORDS, IMPORT_BATCH = 6000, 250
# Small import batches for the worker, so an import has many commits to be killed between.
WORKER_ENV = {"DISTILLERY_IMPORT_BATCH_RECORDS": str(IMPORT_BATCH)}


@pytest.fixture(scope="module")
def _module_worker(_worker_process):
    """The session's worker, restarted once with this module's settings; put back as it was afterwards."""
    saved = dict(_worker_process.env)
    _worker_process.stop()
    _worker_process.env.update(WORKER_ENV)
    yield _worker_process
    _worker_process.stop()
    _worker_process.env.clear()
    _worker_process.env.update(saved)


@pytest.fixture
def worker(_module_worker, transactional_db):
    if not _module_worker.alive:
        _module_worker.start()
    return _module_worker


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid``, from /proc (whatever its session or process group)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found += kids
        todo += kids
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_child(worker, needle: str) -> int:
    """kill -9 the worker's descendant whose command line holds ``needle``, as the OOM killer would."""
    pid = wait_for(lambda: next((p for p in _children(worker.proc.pid) if needle in _cmdline(p)
                                 and "accelerate" not in _cmdline(p)), None),
                   timeout=60, message=f"a process running {needle}")
    os.kill(pid, signal.SIGKILL)
    return pid


def _kill_pool_child(worker, job) -> int:
    pid = int(type(job).objects.get(pk=job.pk).worker.rpartition(":")[2])
    assert pid in _children(worker.proc.pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def _kill(worker, how: str, job, needle: str = "") -> None:
    if how == "worker":
        worker.kill()
        worker.start()  # a supervisor (systemd, Kubernetes) starts it again; the start recovers the job
    elif needle:
        _kill_child(worker, needle)
    else:
        _kill_pool_child(worker, job)


def _succeeded(job, worker, timeout: float = DONE_WITHIN):
    model = type(job)
    row = wait_for(lambda: (r := model.objects.get(pk=job.pk)).status in JobStatus.finished() and r,
                   timeout=timeout, message=f"{model.__name__} {job.pk} to finish")
    assert row.status == JobStatus.SUCCEEDED, f"{row.error}\n{worker.log()[-4000:]}"
    assert row.attempts == 2 and row.worker == ""
    return row


@pytest.mark.parametrize("how", ["worker", "child"])
def test_an_import_resumes_after_its_last_committed_batch(worker, project, how):
    lines = b"".join(json.dumps({"prompt": f"Question {i}: " + "words " * 40, "completion": f"Answer {i}"}).encode()
                     + b"\n" for i in range(IMPORT_RECORDS))
    job = import_job_create(project=project, uploaded_file=SimpleUploadedFile("big.jsonl", lines), skip_invalid=True)
    wait_for(lambda: ImportJob.objects.get(pk=job.pk).resume_line >= 2 * IMPORT_BATCH, timeout=120,
             message="two committed batches")

    _kill(worker, how, job)
    done = _succeeded(job, worker)

    # Nothing twice (no duplicates counted, one row per record) and nothing lost.
    assert (done.read_count, done.imported_count, done.duplicate_count, done.invalid_count) == (IMPORT_RECORDS,) * 2 + (0, 0)
    assert Prompt.objects.filter(project=project).count() == IMPORT_RECORDS
    assert Completion.objects.filter(prompt__project=project).count() == IMPORT_RECORDS

    # Then its follow-up job (queued by the attempt that finished) flags every prompt once and makes it searchable.
    flags = wait_for(lambda: (f := done.flag_job) and f.status in JobStatus.finished() and f, timeout=DONE_WITHIN,
                     message="the import's follow-up job")
    assert flags.status == JobStatus.SUCCEEDED, f"{flags.error}\n{worker.log()[-4000:]}"
    assert flags.done == flags.total == IMPORT_RECORDS and not PendingFlag.objects.exists()
    prompts = Prompt.objects.filter(project=project)
    assert prompts_matching_text(prompts, "answer").count() == IMPORT_RECORDS


@pytest.mark.parametrize("how", ["worker", "child"])
def test_generation_resumes_skipping_the_prompts_it_answered(worker, project, tmp_path, how):
    model_dir = save_tiny_model(tmp_path / "tiny-teacher")
    teacher = generation_svc.teacher_register(actor=SERVER_SHELL, name="tiny", kind=Teacher.Kind.LOCAL, model_path=str(model_dir),
                                              model_name="tiny-llama", default_params={"batch_size": 1, "threads": 1})
    PromptFactory.create_batch(16, project=project)
    # Sampled, not greedy: a random tiny model's greedy answer can be empty, which stores nothing.
    job = generation_svc.generation_job_create(project=project, teacher=teacher, n=1, temperature=1.0, seed=3,
                                               max_new_tokens=48)
    wait_for(lambda: GenerationJob.objects.get(pk=job.pk).done >= 3, timeout=120, message="three prompts answered")
    answered = set(Completion.objects.filter(prompt__project=project).values_list("id", flat=True))

    _kill(worker, how, job)
    done = _succeeded(job, worker)

    # The last attempt answered what was left and skipped what earlier attempts had stored.
    assert done.done == done.total and done.skipped >= 3 and done.skipped + done.total == 16
    per_prompt = Prompt.objects.filter(project=project).annotate(n=Count("completions")).values_list("n", flat=True)
    assert sorted(set(per_prompt)) == [1]  # every prompt answered once: none skipped, none redone
    assert answered <= set(Completion.objects.values_list("id", flat=True))  # earlier answers kept


@pytest.mark.parametrize("how", ["worker", "child"])
def test_training_resumes_from_its_checkpoint(worker, project, tiny_teacher, how):  # noqa: F811
    Teacher.objects.create(project=project, name="tiny", kind=Teacher.Kind.LOCAL, model_path=str(tiny_teacher))
    hyperparams = {**FAST, "max_steps": 60, "save_steps": 5, "logging_steps": 5}
    run = training_run_create(dataset_version=make_version(project), keep_layers=2, hyperparams=hyperparams)
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).checkpoint_step >= 10, timeout=180,
             message="a checkpoint at step 10")

    _kill(worker, how, run, needle="training.ml")
    if how == "child":  # the attempt's end names the killer while the next attempt runs
        noted = wait_for(lambda: (r := TrainingRun.objects.get(pk=run.pk)).attempts == 2 and r, timeout=60,
                         message="the second attempt")
        assert "SIGKILL" in noted.error and "out of memory" in noted.error
    done = _succeeded(run, worker)

    assert done.step == done.total_steps == 60 and done.metrics.get("resumed_from_step", 0) >= 10
    steps = [point["step"] for point in done.metrics_history]
    assert steps == sorted(set(steps))  # redone steps replaced their old points: no step counted twice
    assert (Path(done.model_dir) / "model.safetensors").exists()


@pytest.mark.parametrize("how", ["worker", "child"])
def test_evaluation_keeps_the_models_already_scored(worker, project, tiny_pair, how):  # noqa: F811
    version, _ = make_heldout_version(project, tiny_pair.records)
    for name, path in (("tiny-teacher", tiny_pair.teacher), ("tiny-student", tiny_pair.student)):
        server_resource_register(actor=SERVER_SHELL, kind="model", name=name, path=str(path))
    models = [{"kind": "hf", "path": "tiny-teacher", "label": "first", "role": "teacher"},
              {"kind": "hf", "path": "tiny-student", "label": "second"}]
    run = evaluation_run_create(project=project, created_by=None, dataset_version=version, models=models,
                                options={"batch_size": 2, "max_gen_toks": 24})
    first = wait_for(lambda: (r := EvaluationRun.objects.get(pk=run.pk)).results.get("first") and r,
                     timeout=DONE_WITHIN, message="the first model scored")
    samples = list(EvaluationSample.objects.filter(run=run, model_label="first").values_list("id", flat=True))

    _kill(worker, how, run, needle="evaluation.harness")
    done = _succeeded(run, worker)

    assert done.results["first"] == first.results["first"]  # kept, not evaluated again
    assert list(EvaluationSample.objects.filter(run=run, model_label="first").values_list("id", flat=True)) == samples
    assert set(done.results) == {"first", "second"} and done.progress == 1.0
    per_model = EvaluationSample.objects.filter(run=run).values("model_label").annotate(n=Count("id"))
    assert {row["model_label"]: row["n"] for row in per_model} == {"first": len(samples), "second": len(samples)}


def test_a_running_worker_says_which_queues_it_listens_on(worker, project):
    from curation.jobs.selectors import queue_state

    job = ImportJob.objects.create(project=project, file="never-run.jsonl", status=JobStatus.CANCELLED)
    state = wait_for(lambda: (s := queue_state(job)).listening and s, timeout=30, message="the worker's beat")
    assert state.queue == "default" and len(state.workers) == 1
    worker.stop()  # a clean shutdown takes its row away at once
    assert not queue_state(job).listening


def test_a_queued_job_whose_message_was_lost_runs_after_all(worker, project):
    """The broker lost the message (Redis restarted without persistence): the sweep sends it again."""
    from config.celery import app
    from curation.jobs.services import jobs_sweep

    worker.stop()
    lines = b"".join(json.dumps({"prompt": f"Lost {i}", "completion": f"Found {i}"}).encode() + b"\n" for i in range(20))
    job = import_job_create(project=project, uploaded_file=SimpleUploadedFile("lost.jsonl", lines))
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("default")  # the message is gone with the broker's memory
    worker.start()  # its start-up sweep has run by now: the message is recent, so it was left to arrive
    wait_for(lambda: listening_workers("default"), timeout=30, message="the worker's beat")
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.QUEUED  # nothing came for it
    ImportJob.objects.filter(pk=job.pk).update(sent_at=job.queued_at - timedelta(minutes=10))

    assert jobs_sweep()["import"] == {"resent": [job.pk]}
    row = wait_for(lambda: (r := ImportJob.objects.get(pk=job.pk)).status in JobStatus.finished() and r,
                   timeout=DONE_WITHIN, message="the re-sent import to finish")
    assert row.status == JobStatus.SUCCEEDED and row.imported_count == 20 and row.attempts == 1
