import math

import pytest
import torch

from slm_studio.distill.losses import (distillation_loss, generalized_jsd, hard_label_loss, masked_mean,
                                       soft_target_loss)

LN3 = math.log(3.0)


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def test_forward_kl_matches_hand_computation_with_t_squared_scaling():
    teacher = torch.tensor([[0.0, LN3]])  # p_t = [0.25, 0.75] at T=1
    student = torch.tensor([[0.0, 0.0]])  # p_s = [0.5, 0.5]
    mask = torch.ones(1)
    assert float(soft_target_loss(student, teacher, mask, temperature=1.0)) == pytest.approx(
        0.25 * math.log(0.5) + 0.75 * math.log(1.5), abs=1e-6)
    at_t2 = _kl(_softmax([0.0, LN3 / 2]), [0.5, 0.5]) * 4
    assert float(soft_target_loss(student, teacher, mask, temperature=2.0)) == pytest.approx(at_t2, abs=1e-6)


def test_reverse_kl_matches_hand_computation():
    teacher, student = torch.tensor([[0.0, LN3]]), torch.tensor([[0.0, 0.0]])
    got = soft_target_loss(student, teacher, torch.ones(1), temperature=1.0, kind="reverse_kl")
    assert float(got) == pytest.approx(_kl([0.5, 0.5], [0.25, 0.75]), abs=1e-6)


def test_jsd_matches_hand_computation_at_half():
    p, q = [0.25, 0.75], [0.5, 0.5]
    m = [(a + b) / 2 for a, b in zip(p, q)]
    expected = (0.5 * _kl(p, m) + 0.5 * _kl(q, m)) / 0.25
    got = soft_target_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]]), torch.ones(1), 1.0, "jsd", 0.5)
    assert float(got) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_identical_logits_give_zero(kind):
    logits = torch.randn(2, 5, 50)
    assert float(soft_target_loss(logits, logits.clone(), torch.ones(2, 5), 2.0, kind)) == pytest.approx(0, abs=1e-5)


def test_jsd_tends_to_forward_kl_and_reverse_kl_at_the_ends():
    torch.manual_seed(0)
    log_t, log_s = torch.randn(8, 30).log_softmax(-1), torch.randn(8, 30).log_softmax(-1)
    forward = (log_t.exp() * (log_t - log_s)).sum(-1)
    reverse = (log_s.exp() * (log_s - log_t)).sum(-1)
    torch.testing.assert_close(generalized_jsd(log_t.double(), log_s.double(), 1e-6).float(), forward, rtol=1e-3,
                               atol=1e-4)
    torch.testing.assert_close(generalized_jsd(log_t.double(), log_s.double(), 1 - 1e-6).float(), reverse,
                               rtol=1e-3, atol=1e-4)


def test_cross_entropy_matches_hand_computation():
    logits = torch.tensor([[0.0, LN3], [0.0, 0.0]])
    got = hard_label_loss(logits, torch.tensor([1, 0]), torch.ones(2))
    assert float(got) == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2, abs=1e-6)


def test_losses_average_over_real_tokens_not_over_the_batch():
    torch.manual_seed(1)
    student, teacher = torch.randn(2, 4, 10), torch.randn(2, 4, 10)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    garbage = student.clone()
    garbage[mask == 0] = 1e4  # masked positions must not matter at all
    per_token = [float(soft_target_loss(student[b, t], teacher[b, t], torch.ones(()), 1.0))
                 for b in range(2) for t in range(4) if mask[b, t]]
    got = soft_target_loss(garbage, teacher, mask, 1.0)
    assert float(got) == pytest.approx(sum(per_token) / 4, rel=1e-5)


def test_total_is_alpha_weighted_sum():
    torch.manual_seed(2)
    student, teacher = torch.randn(3, 20), torch.randn(3, 20)
    labels, mask = torch.tensor([1, 2, 3]), torch.ones(3)
    out = distillation_loss(student, teacher, labels, mask, alpha=0.3, temperature=2.0)
    assert float(out["loss"]) == pytest.approx(0.3 * float(out["kl"]) + 0.7 * float(out["ce"]), rel=1e-6)
    assert float(out["kl"]) > 0 and float(out["ce"]) > 0


def test_masked_mean_of_an_empty_mask_is_zero_not_nan():
    assert float(masked_mean(torch.ones(3), torch.zeros(3))) == 0.0
