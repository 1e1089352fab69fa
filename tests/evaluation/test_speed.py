"""Fixed-length speed: every row makes exactly the timed number of tokens, whether the model wants to stop."""

from __future__ import annotations

import pytest
import torch

from evaluation.harness.speed import measure_speed, render_prompts
from tests.tiny import build_model, build_tokenizer


def _biased(model, token: int, bias: float):
    def hook(module, args, output):
        output[..., token] += bias
        return output

    model.lm_head.register_forward_hook(hook)
    return model


@pytest.mark.parametrize("bias", [-1e4, 1e4], ids=["never-stops", "always-stops"])
def test_speed_counts_exactly_the_tokens_it_times(bias):
    tokenizer = build_tokenizer()
    model = _biased(build_model(tokenizer, layers=2), tokenizer.eos_token_id, bias)
    prompts = render_prompts(tokenizer, [[{"role": "user", "content": "What is 2 + 2?"}],
                                         [{"role": "user", "content": "Rewrite this politely, please."}]])
    speed = measure_speed(model, tokenizer, prompts, batch_sizes=(1, 3), new_tokens=9, repeats=2, threads=1)
    assert speed.threads == 1 and torch.get_num_threads() == 1
    assert [p.batch_size for p in speed.points] == [1, 3]
    for point in speed.points:
        assert point.new_tokens == 9
        assert point.tokens_per_second == pytest.approx(point.batch_size * 9 / point.latency_s, rel=1e-3)
        assert point.latency_s >= point.latency_s_min > 0
