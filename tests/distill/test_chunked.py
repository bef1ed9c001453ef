"""The chunked loss equals the plain one, and top-k with a rest bucket approaches it as k grows."""

import pytest
import torch

from slm_studio.distill.chunked import TeacherTopK, chunked_distillation_loss, teacher_top_k
from slm_studio.distill.losses import distillation_loss, soft_target_loss, top_k_buckets


def _setup(n=37, h=16, v=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, h, generator=g, requires_grad=True), torch.randn(v, h, generator=g, requires_grad=True),
            torch.randn(n, h, generator=g), torch.randn(v, h, generator=g), torch.randint(0, v, (n,), generator=g))


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_chunked_equals_unchunked_in_value_and_gradient(kind):
    sh, shead, th, thead, labels = _setup()
    plain = distillation_loss(sh @ shead.T, th @ thead.T, labels, torch.ones(len(labels)), 0.3, 2.0, kind)
    plain["loss"].backward()
    grads = sh.grad.clone(), shead.grad.clone()
    sh.grad = shead.grad = None
    chunked = chunked_distillation_loss(sh, shead, labels, (th, thead), 0.3, 2.0, kind, chunk=8)
    chunked["loss"].backward()
    for key in ("loss", "kl", "ce"):
        assert float(chunked[key].detach()) == pytest.approx(float(plain[key].detach()), rel=1e-5)
    torch.testing.assert_close(sh.grad, grads[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(shead.grad, grads[1], rtol=1e-4, atol=1e-6)


def test_top_k_with_the_whole_vocabulary_is_exact():
    sh, shead, th, thead, labels = _setup(v=50)
    full = soft_target_loss(sh @ shead.T, th @ thead.T, torch.ones(len(labels)), 2.0)
    cached = teacher_top_k(th, thead, 2.0, k=50)
    got = chunked_distillation_loss(sh, shead, labels, cached, 1.0, 2.0)["kl"]
    assert float(got) == pytest.approx(float(full), rel=1e-4)


def test_top_k_gets_closer_to_full_kl_as_k_grows():
    sh, shead, th, thead, labels = _setup(v=400)
    full = float(soft_target_loss(sh @ shead.T, th @ thead.T, torch.ones(len(labels)), 1.0))
    errors = [abs(float(chunked_distillation_loss(sh, shead, labels, teacher_top_k(th, thead, 1.0, k), 1.0, 1.0)
                        ["kl"]) - full) for k in (4, 32, 256)]
    assert errors[0] > errors[1] > errors[2]


def test_rest_bucket_makes_each_side_a_distribution():
    log_s = torch.randn(5, 100).log_softmax(-1)
    top = torch.randn(5, 100).log_softmax(-1).topk(10)
    log_t, log_s_b = top_k_buckets(log_s, top.values, top.indices)
    torch.testing.assert_close(log_t.exp().sum(-1), torch.ones(5))
    torch.testing.assert_close(log_s_b.exp().sum(-1), torch.ones(5))
    assert isinstance(TeacherTopK(top.values, top.indices), TeacherTopK)
