"""The OpenAI-compatible teacher against a chat-completions server on loopback, started by the test."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from curation.teachers.base import GenerationParams, TeacherAuthError, TeacherError
from curation.teachers.openai_compatible import OpenAICompatibleTeacher


class FakeChatServer:
    """Answers each request with the next scripted action ('429', '500', 'slow', '401'), then 'ok'."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                    action = server.script.pop(0) if server.script else "ok"
                if action == "slow":
                    time.sleep(1.0)
                if action in {"429", "500", "401"}:
                    payload = json.dumps({"error": {"message": f"scripted {action}"}}).encode()
                    self.send_response(int(action))
                    if action == "429":
                        self.send_header("Retry-After", "0")
                else:
                    payload = json.dumps(server.answer(body)).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow answer
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @staticmethod
    def answer(body: dict) -> dict:
        question = body["messages"][-1]["content"]
        words = f"echo {question} seed {body.get('seed')}".split()
        truncated = len(words) > body["max_tokens"]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": " ".join(words[: body["max_tokens"]])},
            "finish_reason": "length" if truncated else "stop",
        }
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [{"token": w, "logprob": -0.5} for w in words[: body["max_tokens"]]]}
        return {"choices": [choice], "usage": {"completion_tokens": min(len(words), body["max_tokens"])}}


@pytest.fixture
def server():
    fake = FakeChatServer()
    thread = threading.Thread(target=fake.httpd.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def teacher(server: FakeChatServer, **options) -> OpenAICompatibleTeacher:
    defaults = {"concurrency": 1, "timeout": 0.3, "backoff": 0.01, "max_retries": 3}
    # The fake server is on loopback: the operator's allowlist must name it, as for a local vLLM.
    defaults["allowed_hosts"] = ["127.0.0.1"]
    return OpenAICompatibleTeacher(base_url=server.base_url, model="teacher-7b", **{**defaults, **options})


def generate(t: OpenAICompatibleTeacher, prompts, **params) -> list:
    return list(t.generate(prompts, GenerationParams(**params)))


def test_answers_every_prompt_with_n_candidates(server, monkeypatch):
    monkeypatch.setenv("FAKE_TEACHER_KEY", "sekret")
    prompts = ["one", "two", "three"]
    results = generate(teacher(server, api_key_env="FAKE_TEACHER_KEY", concurrency=3), prompts,
                       n=2, seed=10, max_new_tokens=50, system_prompt="Be brief.")
    assert sorted(r.index for r in results) == [0, 1, 2]
    for result in results:
        assert [c.text for c in result.candidates] == [f"echo {prompts[result.index]} seed {s}" for s in (10, 11)]
        assert {c.finish_reason for c in result.candidates} == {"stop"}
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sekret"
    assert request["model"] == "teacher-7b"
    assert request["max_tokens"] == 50
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}
    assert len(server.requests) == 6


def test_truncation_and_logprobs_come_through(server):
    [result] = generate(teacher(server), ["a long question here"], max_new_tokens=3, logprobs=True)
    candidate = result.candidates[0]
    assert candidate.finish_reason == "length"
    assert candidate.text == "echo a long"
    assert candidate.logprobs == [-0.5, -0.5, -0.5]
    assert candidate.completion_tokens == 3
    assert server.requests[0]["auth"] is None  # no key configured: none sent


@pytest.mark.parametrize("failure", ["429", "500", "slow"])
def test_transient_failure_is_retried(server, failure):
    server.script = [failure]
    [result] = generate(teacher(server), ["hello"], seed=1)
    assert result.candidates[0].text == "echo hello seed 1"
    assert len(server.requests) == 2


def test_gives_up_after_the_retry_budget(server):
    server.script = ["500"] * 10
    with pytest.raises(TeacherError, match="giving up after 4 attempts: HTTP 500"):
        generate(teacher(server, max_retries=3), ["hello"])
    assert len(server.requests) == 4


def test_bad_key_is_a_clear_error_and_not_retried(server, monkeypatch):
    monkeypatch.setenv("FAKE_TEACHER_KEY", "wrong")
    server.script = ["401"]
    with pytest.raises(TeacherAuthError, match=r"rejected the key in \$FAKE_TEACHER_KEY: HTTP 401"):
        generate(teacher(server, api_key_env="FAKE_TEACHER_KEY"), ["hello", "world"])
    assert len(server.requests) == 1


def test_missing_key_variable_fails_before_any_request(server, monkeypatch):
    monkeypatch.delenv("FAKE_TEACHER_KEY", raising=False)
    with pytest.raises(TeacherAuthError, match="FAKE_TEACHER_KEY is not set"):
        generate(teacher(server, api_key_env="FAKE_TEACHER_KEY"), ["hello"])
    assert server.requests == []


def test_stopping_iteration_drops_queued_requests(server):
    results = teacher(server, concurrency=1).generate([f"q{i}" for i in range(20)], GenerationParams())
    next(results)
    results.close()
    time.sleep(0.2)
    # Only the small submission window was ever sent, not all twenty prompts.
    assert len(server.requests) <= 3
