"""Magpie prompt synthesis on a tiny chat model."""

from __future__ import annotations

import pytest

from curation.teachers.magpie import normalize, pre_query_template, quality_flags, synthesize_prompts
from tests.tiny import build_model, build_tokenizer


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tokenizer()
    return build_model(tokenizer, layers=2), tokenizer


def test_pre_query_template_is_the_user_header_with_no_content(tiny):
    _, tokenizer = tiny
    assert pre_query_template(tokenizer) == "<|im_start|>user\n"
    assert pre_query_template(tokenizer, "Be brief.") == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"


def test_synthesis_is_reproducible_unique_and_skips_existing_prompts(tiny):
    model, tokenizer = tiny
    first = synthesize_prompts(model, tokenizer, 6, max_new_tokens=12, batch_size=4, seed=3)
    again = synthesize_prompts(model, tokenizer, 6, max_new_tokens=12, batch_size=4, seed=3)
    assert [p.text for p in first.prompts] == [p.text for p in again.prompts]
    keys = [normalize(p.text) for p in first.prompts]
    assert len(keys) == len(set(keys)) and first.prompts
    assert first.generated >= len(first.prompts) + first.duplicates + first.empty - 4
    for prompt in first.prompts:
        assert "\x00" not in prompt.text  # PostgreSQL text cannot hold it
        assert prompt.finish_reason in ("stop", "length") and 0 < prompt.tokens <= 12
        assert ("truncated" in prompt.flags) == (prompt.finish_reason == "length")
    # Prompts already in the project are never produced again.
    known = [p.text for p in first.prompts]
    more = synthesize_prompts(model, tokenizer, 6, max_new_tokens=12, batch_size=4, seed=3, existing=known)
    assert not {normalize(p.text) for p in more.prompts} & set(keys)
    assert more.duplicates >= len(first.prompts)


def test_quality_flags():
    assert quality_flags("What is the capital of France?", "stop") == []
    assert quality_flags("Hi", "stop") == ["short"]
    assert "truncated" in quality_flags("Explain how a rainbow forms and why it", "length")
    assert "repetition" in quality_flags("go on and on " * 6, "stop")
    assert "template_tokens" in quality_flags("What is <|im_start|> used for here?", "stop")
    assert "mostly_symbols" in quality_flags("### ... 12345 ??? !!! ###", "stop")
    assert "answer_not_question" in quality_flags("Sure, here is the answer you wanted.", "stop")
