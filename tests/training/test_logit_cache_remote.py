"""An OpenAI-compatible teacher fills the logit cache: a fake vLLM on loopback scores prompts with the tiny
teacher's real forward pass, and its cache must equal the one the local teacher fills (to fp16)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from curation.models import JobStatus, ServerResource, Teacher
from curation.selectors.access import SERVER_SHELL
from curation.services.generation import teacher_register
from training.logit_caches import logit_cache_create, logit_cache_run
from training.ml.logit_cache import CacheMismatch, LogitCache, token_id_mapper
from training.models import LogitCache as LogitCacheJob

pytestmark = pytest.mark.django_db


class FakeVLLM:
    """vLLM's /v1/completions with prompt_logprobs: per position the top k {id: {logprob, rank, decoded_token}},
    plus the prompt's own token when it is not among them. `mode`: "ok", "none" (no prompt_logprobs),
    "short" (one position missing), "500-once" (a server error, then "ok")."""

    def __init__(self, model_dir) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(1)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.mode = "ok"
        self.requests: list[dict] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append({"path": self.path, **body})
                    fake.in_flight += 1
                    fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
                    mode = fake.mode
                    if mode == "500-once":
                        fake.mode = "ok"
                try:
                    status, answer = (500, {"error": "boom"}) if mode == "500-once" else (200, fake.answer(body, mode))
                finally:
                    with fake.lock:
                        fake.in_flight -= 1
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, body: dict, mode: str) -> dict:
        import torch

        ids, k = body["prompt"], body["prompt_logprobs"]
        with torch.inference_mode():
            log_probs = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
        entries: list[dict | None] = [None]
        for position in range(1, len(ids)):
            row = log_probs[position - 1]
            values, top = row.topk(k)
            chosen = {int(i): float(v) for v, i in zip(values, top)}
            chosen.setdefault(ids[position], float(row[ids[position]]))
            ranks = (row > row[list(chosen)].unsqueeze(1)).sum(1) + 1
            entries.append({str(i): {"logprob": lp, "rank": int(r), "decoded_token": self.tokenizer.decode([i])}
                            for (i, lp), r in zip(chosen.items(), ranks.tolist())})
        if mode == "short":
            entries = entries[:-1]
        choice = {"index": 0, "text": "x", "finish_reason": "length", "logprobs": None}
        if mode != "none":
            choice["prompt_logprobs"] = entries
        return {"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": [choice]}


@pytest.fixture
def vllm(tiny_teacher, settings, tmp_path):
    settings.DATA_DIR = tmp_path  # cache folders are named by id: keep other tests' folders out of reach
    settings.TEACHER_ALLOWED_HOSTS = ["127.0.0.1"]  # the operator allows the loopback server, as for a local vLLM
    fake = FakeVLLM(tiny_teacher)
    thread = threading.Thread(target=fake.httpd.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture
def remote_teacher(project, tiny_teacher, vllm):
    ServerResource.objects.create(kind=ServerResource.Kind.MODEL, name="tiny-tokenizer", path=str(tiny_teacher))
    return teacher_register(
        actor=SERVER_SHELL, project=project, name="tiny-remote", kind=Teacher.Kind.OPENAI, base_url=vllm.base_url,
        model_name="tiny", default_params={"tokenizer": "tiny-tokenizer", "concurrency": 2, "timeout": 30,
                                           "max_retries": 2},
    )


def test_a_remote_teacher_fills_the_cache_the_local_teacher_fills(version, local_teacher, remote_teacher, vllm):
    vllm.mode = "500-once"  # the teacher's retries carry the build over a server error
    remote = logit_cache_create(dataset_version=version, teacher=remote_teacher, top_k=8, enqueue=False)
    assert logit_cache_run(job_id=remote.pk) == JobStatus.SUCCEEDED
    local = logit_cache_create(dataset_version=version, teacher=local_teacher, top_k=8, enqueue=False)
    assert logit_cache_run(job_id=local.pk) == JobStatus.SUCCEEDED
    remote.refresh_from_db()
    local.refresh_from_db()
    assert remote.status == local.status == JobStatus.SUCCEEDED, (remote.error, local.error)

    served, built = LogitCache(remote.folder), LogitCache(local.folder)
    assert served.manifest.remote and served.manifest.server == f"tiny @ {vllm.base_url}"
    assert not built.manifest.remote
    for key in ("train_file_sha256", "tokenizer_sha256", "examples", "tokens", "top_k", "max_seq_len"):
        assert getattr(served.manifest, key) == getattr(built.manifest, key), key
    assert served.manifest.examples == version.train_count and served.manifest.tokens > 0
    for row, (values, indices) in built._entries.items():
        remote_values, remote_indices = served._entries[row]
        assert remote_values.dtype == values.dtype and remote_values.shape == values.shape
        assert (remote_values.float() - values.float()).abs().max() <= 2e-3, row  # one fp16 step near -5
        assert remote_indices.tolist() == indices.tolist(), row

    asked = [r for r in vllm.requests if r["path"] == "/v1/completions"]
    assert len(asked) == version.train_count + 1  # one per example, and the retried one
    assert all(r["prompt_logprobs"] == 8 and r["max_tokens"] == 1 and r["model"] == "tiny" for r in asked)
    assert all(isinstance(r["prompt"], list) and all(isinstance(i, int) for i in r["prompt"]) for r in asked)
    assert vllm.most_in_flight <= 2  # the teacher's concurrency


@pytest.mark.slow
def test_kd_of_a_student_folder_trains_from_an_api_teachers_cache(version, remote_teacher):
    from tests.training.conftest import FAST
    from training.services import training_run_create, training_run_execute

    kd = {"dataset_version": version, "method": "kd", "student_source": "folder", "student_path": "tiny-tokenizer",
          "teacher": remote_teacher, "enqueue": False, "hyperparams": {**FAST, "max_steps": 2}}
    with pytest.raises(ValidationError, match="reads its logits from a cache"):
        training_run_create(**kd)
    with pytest.raises(ValidationError, match="local teacher"):  # deriving a student needs the teacher's weights
        training_run_create(**{**kd, "student_source": "derive", "student_path": ""})
    cache = logit_cache_create(dataset_version=version, teacher=remote_teacher, top_k=8, enqueue=False)
    assert logit_cache_run(job_id=cache.pk) == JobStatus.SUCCEEDED
    run = training_run_create(**kd)
    assert training_run_execute(run_id=run.pk) == JobStatus.SUCCEEDED
    run.refresh_from_db()
    cache.refresh_from_db()
    assert run.report["logit_cache"]["sha256"] == cache.sha256


def test_a_server_without_prompt_logprobs_or_with_another_tokenization_is_refused(version, remote_teacher, vllm):
    vllm.mode = "none"
    cache = logit_cache_create(dataset_version=version, teacher=remote_teacher, top_k=4, enqueue=False)
    assert logit_cache_run(job_id=cache.pk) == JobStatus.FAILED
    cache.refresh_from_db()
    assert "no prompt log-probabilities" in cache.error

    vllm.mode = "short"
    cache = logit_cache_create(dataset_version=version, teacher=remote_teacher, top_k=4, enqueue=False)
    assert cache.status == JobStatus.QUEUED  # the failed cache, queued again
    assert logit_cache_run(job_id=cache.pk) == JobStatus.FAILED
    cache.refresh_from_db()
    assert "positions" in cache.error and "tokenizer" in cache.error
    assert LogitCacheJob.objects.count() == 1


def test_an_api_teacher_needs_a_registered_tokenizer_and_an_allowed_host(version, project, remote_teacher, settings):
    bare = Teacher.objects.create(project=project, name="bare", kind=Teacher.Kind.OPENAI,
                                  base_url=remote_teacher.base_url, model_name="m")
    with pytest.raises(ValidationError, match="needs its tokenizer"):
        logit_cache_create(dataset_version=version, teacher=bare, enqueue=False)
    with pytest.raises(ValidationError, match="Pick a model an operator registered"):
        teacher_register(actor=SERVER_SHELL, project=project, name="bad", kind=Teacher.Kind.OPENAI,
                         base_url=remote_teacher.base_url, model_name="m", default_params={"tokenizer": "/etc"})
    settings.TEACHER_ALLOWED_HOSTS = []  # the operator took loopback off the list
    with pytest.raises(ValidationError):
        logit_cache_create(dataset_version=version, teacher=remote_teacher, enqueue=False)
    assert not LogitCacheJob.objects.exists()


def test_the_button_offers_and_queues_an_api_teacher(client, version, curator, remote_teacher):
    from django.urls import reverse

    client.force_login(curator)
    page = client.get(reverse("training:version_train", args=[version.pk]))
    assert f'<option value="{remote_teacher.pk}">tiny-remote</option>'.encode() in page.content
    answer = client.post(reverse("training:version_cache_logits", args=[version.pk]),
                         {"teacher": remote_teacher.pk, "top_k": 4}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200, answer.content
    assert LogitCacheJob.objects.get().teacher == remote_teacher


def test_server_tokens_map_to_the_tokenizer_ids(tiny_teacher):
    from training.ml.student import load_tokenizer

    tokenizer = load_tokenizer(tiny_teacher)
    to_id = token_id_mapper(tokenizer)
    word = next(t for t, i in tokenizer.get_vocab().items() if t.startswith("Ġ") and len(t) > 3)
    word_id = tokenizer.get_vocab()[word]
    assert to_id(word) == word_id  # a vocabulary entry
    assert to_id(f"token_id:{word_id}") == word_id  # vLLM's --return-tokens-as-token-ids
    assert to_id(tokenizer.decode([word_id])) == word_id  # decoded text, as the legacy echo shape gives
    assert to_id(7) == 7
    with pytest.raises(CacheMismatch, match="another tokenizer"):
        to_id("zzzz-not-a-token")
