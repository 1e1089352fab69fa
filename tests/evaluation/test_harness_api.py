"""An OpenAI-compatible endpoint as a model: generate_until tasks only, with a note why."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evaluation.harness import EvalOptions, HeldoutSpec, ModelSpec, parse_model, plan_runs, run_model_subprocess
from evaluation.harness.runner import lm_eval_model
from tests.evaluation.helpers import ITEMS

ANSWERS = {question: answer for _, question, answer in ITEMS}


class ChatHandler(BaseHTTPRequestHandler):
    """Answers like a perfect teacher, except for one question it gets wrong."""

    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ChatHandler.seen.append(body)
        question = body["messages"][-1]["content"]
        answer = "No idea." if question.startswith("What is 3") else ANSWERS.get(question, "?")
        payload = json.dumps({
            "id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    server.shutdown()


@pytest.mark.slow
def test_api_model_runs_generation_tasks_only(endpoint, tiny_pair, tmp_path):
    ChatHandler.seen.clear()
    # Even with the chat template off for the run, an endpoint gets messages.
    config = plan_runs([ModelSpec("gpt", "api", endpoint, role="teacher", api_model="big-teacher")],
                       output_dir=str(tmp_path), heldout=HeldoutSpec(str(tiny_pair.heldout), max_gen_toks=16),
                       options=EvalOptions(apply_chat_template=False, batch_size=4))[0]
    result = run_model_subprocess(config)
    assert set(result.metrics) == {"heldout_gen"}
    assert result.metrics["heldout_gen"]["exact_match"].value == pytest.approx(5 / 6)
    assert len(result.notes) == 1 and "heldout_ppl" in result.notes[0] and "log-probabilities" in result.notes[0]
    assert len(ChatHandler.seen) == 6
    first = next(b for b in ChatHandler.seen if b["messages"][-1]["content"] == "What is 2 + 2?")
    assert first["model"] == "big-teacher" and first["max_tokens"] == 16
    assert first["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    m = result.measurements
    assert m.parameter_count is None and m.size_on_disk_bytes is None and m.generated_tokens is None
    assert (m.prompts, m.batch_size) == (6, 1) and m.batch_latency_s_mean > 0
    assert "--apply_chat_template" in result.lm_eval_command


def test_model_specs_map_to_lm_eval_models(tmp_path):
    gguf = tmp_path / "m" / "model.Q4.gguf"
    assert lm_eval_model(ModelSpec("a", "hf", "/models/s")) == ("hf", {"pretrained": "/models/s"})
    assert lm_eval_model(ModelSpec("a", "gguf", str(gguf))) == (
        "hf", {"pretrained": str(gguf.parent), "gguf_file": "model.Q4.gguf"})
    name, args = lm_eval_model(parse_model("teacher=api:http://h/v1/chat/completions#m1"))
    assert name == "local-chat-completions" and args["model"] == "m1" and args["base_url"] == "http://h/v1/chat/completions"
    assert parse_model("teacher=hf:/x").role == "teacher" and parse_model("s=hf:/x").role == "student"
