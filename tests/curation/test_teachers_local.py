"""The local teacher on a tiny model built in code: batching, finish reasons, logprobs, laziness."""

from __future__ import annotations

import os

import pytest

from curation.teachers.base import GenerationParams, to_messages
from curation.teachers.local import LocalTeacher
from curation.teachers.threads import ENV_VAR
from tests.tiny import save_tiny_model

PROMPTS = [
    "What is 2 + 2?",
    "Explain photosynthesis in one sentence, please, with as much detail as fits.",
    "Rewrite this politely: send the report.",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}],
    "Hi",
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and a second one spinning on a busy CPU makes them crawl.
    The environment variable is the thread rule's own knob, so teachers loaded in the test keep to it."""
    import torch

    previous, previous_env = torch.get_num_threads(), os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
    if previous_env is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = previous_env


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-teacher"))


def run(teacher: LocalTeacher, prompts=PROMPTS, **params) -> list:
    return list(teacher.generate(prompts, GenerationParams(**params)))


def test_batched_greedy_equals_one_prompt_at_a_time(model_dir):
    greedy = {"temperature": 0, "max_new_tokens": 12}
    batched = run(LocalTeacher(model_dir, batch_size=8), **greedy)
    single = run(LocalTeacher(model_dir, batch_size=1), **greedy)
    assert [r.index for r in batched] == list(range(len(PROMPTS)))
    assert [r.candidates[0].text for r in batched] == [r.candidates[0].text for r in single]
    assert [r.candidates[0].completion_tokens for r in batched] == [r.candidates[0].completion_tokens for r in single]


def test_truncated_output_reports_length(model_dir):
    results = run(LocalTeacher(model_dir, batch_size=4), temperature=0, max_new_tokens=3)
    # A random tiny model almost never emits the end token within 3 steps.
    assert {c.finish_reason for r in results for c in r.candidates} == {"length"}
    assert {c.completion_tokens for r in results for c in r.candidates} == {3}


def test_end_token_reports_stop(model_dir):
    teacher = LocalTeacher(model_dir, batch_size=4)
    assert run(teacher, ["What is 2 + 2?"], temperature=0, max_new_tokens=4)[0].candidates[0].finish_reason == "length"
    # Declare the token the model picks first an end token: generation must stop right there.
    teacher._model.generation_config.eos_token_id = [teacher._tokenizer.eos_token_id, first_greedy_token(teacher)]
    stopped = run(teacher, ["What is 2 + 2?"], temperature=0, max_new_tokens=4)[0].candidates[0]
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens == 1
    assert stopped.text == ""


def next_token_logprobs(teacher: LocalTeacher, prompt: str):
    import torch

    encoded = teacher._tokenizer(teacher.render(prompt), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return torch.log_softmax(teacher._model(**encoded).logits[0, -1], dim=-1)


def first_greedy_token(teacher: LocalTeacher) -> int:
    return int(next_token_logprobs(teacher, "What is 2 + 2?").argmax())


def test_logprobs_are_the_models_own(model_dir):
    teacher = LocalTeacher(model_dir, batch_size=4)
    results = run(teacher, temperature=0, max_new_tokens=6, logprobs=True)
    for result in results:
        candidate = result.candidates[0]
        assert len(candidate.logprobs) == candidate.completion_tokens
        assert all(lp <= 0 for lp in candidate.logprobs)
    # Greedy picks the argmax, so the first logprob is the best log-probability after the prompt.
    expected = next_token_logprobs(teacher, PROMPTS[0]).max().item()
    assert results[0].candidates[0].logprobs[0] == pytest.approx(expected, abs=1e-3)


def test_sampling_gives_n_candidates_and_a_seed_repeats_them(model_dir):
    teacher = LocalTeacher(model_dir, batch_size=4)
    params = {"n": 3, "temperature": 1.0, "top_p": 0.95, "max_new_tokens": 8, "seed": 7}
    first, again = run(teacher, **params), run(teacher, **params)
    assert [len(r.candidates) for r in first] == [3] * len(PROMPTS)
    assert [[c.text for c in r.candidates] for r in first] == [[c.text for c in r.candidates] for r in again]
    assert first[0].candidates[0].logprobs is None
    # Sampling at temperature 1 from a random model: three equal candidates would mean no sampling.
    assert any(len({c.text for c in r.candidates}) > 1 for r in first)


def test_stopping_iteration_stops_generating(model_dir, monkeypatch):
    teacher = LocalTeacher(model_dir, batch_size=2)
    teacher.load()
    calls = []
    original = teacher._model.generate
    monkeypatch.setattr(teacher._model, "generate", lambda **kw: calls.append(1) or original(**kw))
    results = teacher.generate(PROMPTS, GenerationParams(temperature=0, max_new_tokens=2))
    assert [next(results).index, next(results).index] == [0, 1]
    results.close()  # what a cancelled job does between batches
    assert len(calls) == 1


def test_params_are_validated():
    with pytest.raises(ValueError, match="greedy"):
        GenerationParams(n=2, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        GenerationParams(top_p=0)


def test_system_prompt_goes_first_unless_the_chat_has_one():
    assert to_messages("Hi", "Be kind.") == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
    ]
    chat = [{"role": "system", "content": "Own."}, {"role": "user", "content": "Hi"}]
    assert to_messages(chat, "Be kind.") == chat
