"""The hand-written distillation divergence against its definitions."""

from __future__ import annotations

import math

import pytest
import torch

from training.ml.trainers import divergence


@pytest.fixture
def logits():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(5, 11, generator=generator), torch.randn(5, 11, generator=generator)


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    p, log_p, log_q = p_logits.softmax(-1), p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    return (p * (log_p - log_q)).sum(-1)


def test_beta_zero_is_forward_kl_and_one_is_reverse_kl(logits):
    student, teacher = logits
    assert torch.allclose(divergence(student, teacher, temperature=1.0, beta=0.0), _kl(teacher, student), atol=1e-6)
    assert torch.allclose(divergence(student, teacher, temperature=1.0, beta=1.0), _kl(student, teacher), atol=1e-6)


def test_temperature_softens_both_distributions(logits):
    student, teacher = logits
    expected = _kl(teacher / 4.0, student / 4.0)
    assert torch.allclose(divergence(student, teacher, temperature=4.0, beta=0.0), expected, atol=1e-6)


def test_jsd_is_symmetric_bounded_and_zero_on_equal_inputs(logits):
    student, teacher = logits
    forward = divergence(student, teacher, temperature=1.0, beta=0.5)
    backward = divergence(teacher, student, temperature=1.0, beta=0.5)
    assert torch.allclose(forward, backward, atol=1e-6)
    assert (forward > 0).all() and (forward <= math.log(2) + 1e-6).all()
    assert torch.allclose(divergence(teacher, teacher, temperature=2.0, beta=0.3), torch.zeros(5), atol=1e-6)
