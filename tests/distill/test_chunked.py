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
    full = soft_target_loss(sh @ shead.T, th @ thead.T, torch.ones(len(labels)), 2.0).detach()
    cached = teacher_top_k(th, thead, 2.0, k=50)
    got = chunked_distillation_loss(sh, shead, labels, cached, 1.0, 2.0)["kl"].detach()
    assert float(got) == pytest.approx(float(full.detach()), rel=1e-4)


def test_top_k_gets_closer_to_full_kl_as_k_grows():
    sh, shead, th, thead, labels = _setup(v=400)
    full = float(soft_target_loss(sh @ shead.T, th @ thead.T, torch.ones(len(labels)), 1.0).detach())
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


def _flat_teacher(n=6, h=16, v=300):
    """A teacher whose distribution at T = 2 keeps most of its mass outside its top 8, like SmolLM2's."""
    sh, shead, th, thead, labels = _setup(n=n, h=h, v=v)
    return sh, shead, th * 0.3, thead, labels


def test_tail_samples_are_drawn_outside_the_top_k_in_proportion_to_probability():
    _, _, th, thead, _ = _flat_teacher(n=1)
    log_t = torch.log_softmax(th @ thead.T / 2.0, -1)
    many = th.expand(40000, -1)
    cached = teacher_top_k(many, thead, 2.0, k=8, tail_samples=16, generator=torch.Generator().manual_seed(0))
    top = set(cached.index[0].tolist())
    counts = torch.bincount(cached.tail_index.flatten(), minlength=thead.shape[0]).float()
    assert not top & set(cached.tail_index.unique().tolist())
    p_rest = log_t[0].exp().clone()
    p_rest[list(top)] = 0
    expected = p_rest / p_rest.sum() * counts.sum()
    frequent = expected > 1000  # tokens drawn often enough for a tight comparison
    assert frequent.sum() > 20
    torch.testing.assert_close(counts[frequent], expected[frequent], rtol=0.1, atol=0)
    assert float(cached.tail_plogp[0]) == pytest.approx(float((p_rest * log_t[0]).sum()), rel=1e-5)


def test_sampled_tail_estimates_the_full_forward_kl_and_its_gradient_without_bias():
    sh, shead, th, thead, labels = _flat_teacher()
    full = soft_target_loss(sh @ shead.T, th @ thead.T, torch.ones(len(labels)), 2.0)
    full_grad, = torch.autograd.grad(full, sh)

    def kl_and_grad(cached):
        kl = chunked_distillation_loss(sh, shead, labels, cached, 1.0, 2.0)["loss"]
        return float(kl.detach()), torch.autograd.grad(kl, sh)[0]

    bucket_kl, bucket_grad = kl_and_grad(teacher_top_k(th, thead, 2.0, k=8))
    draws = [kl_and_grad(teacher_top_k(th, thead, 2.0, k=8, tail_samples=16,
                                       generator=torch.Generator().manual_seed(seed))) for seed in range(300)]
    mean_kl = sum(kl for kl, _ in draws) / len(draws)
    mean_grad = sum(grad for _, grad in draws) / len(draws)

    assert mean_kl == pytest.approx(float(full.detach()), rel=0.02)
    assert abs(bucket_kl - float(full.detach())) > 0.2 * float(full.detach())  # the one-bucket rest misses most of it
    sampled_error = (mean_grad - full_grad).norm() / full_grad.norm()
    bucket_error = (bucket_grad - full_grad).norm() / full_grad.norm()
    assert sampled_error < 0.05
    assert bucket_error > 0.3


def test_written_out_gradients_equal_autograd_of_the_sampled_estimate():
    sh, shead, th, thead, labels = _flat_teacher()
    cached = teacher_top_k(th, thead, 2.0, k=8, tail_samples=16, generator=torch.Generator().manual_seed(0))
    got = chunked_distillation_loss(sh, shead, labels, cached, 0.3, 2.0, chunk=4)
    got_grads = torch.autograd.grad(got["loss"], (sh, shead))

    log_q = torch.log_softmax(sh @ shead.T / 2.0, -1)  # the same estimate, spelled out and left to autograd
    top_p = cached.log_probs.exp()
    rest = 1 - top_p.sum(-1)
    kl = ((top_p * (cached.log_probs - log_q.gather(-1, cached.index))).sum(-1) + cached.tail_plogp
          - rest / 16 * log_q.gather(-1, cached.tail_index).sum(-1)).mean() * 4.0
    ce = torch.nn.functional.cross_entropy(sh @ shead.T, labels)
    want = 0.3 * kl + 0.7 * ce
    for ours, theirs in zip(got_grads, torch.autograd.grad(want, (sh, shead))):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    assert float(got["kl"]) == pytest.approx(float(kl.detach()), rel=1e-5)
