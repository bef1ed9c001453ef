"""AdamW with bf16 moments: follows torch's AdamW, rounds its second moment without bias, resumes exactly."""

import io

import pytest
import torch

from slm_studio.distill.optim import BF16StateAdamW, stochastic_bf16


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x, w_true = torch.randn(256, 32, generator=g), torch.randn(32, 8, generator=g)
    return x, x @ w_true, torch.zeros(32, 8, requires_grad=True)


def _train(optimizer_class, steps=300, **kwargs):
    x, y, w = _problem()
    optimizer = optimizer_class([w], lr=5e-2, weight_decay=0.01, **kwargs)
    losses = []
    for _ in range(steps):
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return w.detach(), losses


def test_follows_torch_adamw():
    ours, our_losses = _train(BF16StateAdamW)
    theirs, their_losses = _train(torch.optim.AdamW)
    assert our_losses[-1] < 0.01 * our_losses[0]
    assert our_losses[-1] == pytest.approx(their_losses[-1], rel=0.1)
    assert (ours - theirs).norm() < 0.01 * theirs.norm()


def _noise(n, generator):
    return torch.randint(0, 1 << 16, (n,), generator=generator, dtype=torch.int32)


def test_stochastic_rounding_is_unbiased_and_lets_a_moment_decay():
    x = torch.full((200_000,), 1.0 + 1 / 1024)  # between two bf16 values (1 and 1 + 1/128), nearer the lower
    rounded = stochastic_bf16(x.clone(), _noise(len(x), torch.Generator().manual_seed(0))).float()
    assert set(rounded.unique().tolist()) == {1.0, 1.0 + 1 / 128}
    assert float(rounded.mean()) == pytest.approx(1.0 + 1 / 1024, rel=1e-4)
    # the second moment with no gradient: x 0.999 a step; rounded to nearest it would stay at 1 forever
    v = torch.ones(10_000, dtype=torch.bfloat16)
    generator = torch.Generator().manual_seed(1)
    for _ in range(500):
        v = stochastic_bf16(v.float().mul_(0.999), _noise(len(v), generator))
    assert float(v.float().mean()) == pytest.approx(0.999 ** 500, rel=0.02)
    assert torch.bfloat16 == v.dtype and (torch.ones(1, dtype=torch.bfloat16).float() * 0.999).bfloat16() == 1


def test_moments_are_bf16_and_a_reloaded_optimizer_continues_exactly():
    x, y, w = _problem()
    w2 = w.detach().clone().requires_grad_()
    first, second = BF16StateAdamW([w], lr=1e-2, seed=3), BF16StateAdamW([w2], lr=1e-2, seed=3)

    def step(optimizer, weight):
        ((x @ weight - y) ** 2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(5):
        step(first, w)
        step(second, w2)
    assert torch.equal(w, w2)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # as a checkpoint does
    assert first.state[w]["exp_avg_sq"].dtype == torch.bfloat16
    restored = BF16StateAdamW([w2], lr=1e-2, seed=99)  # the saved rounding generator wins over the seed
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.state[w2]["exp_avg"].dtype == torch.bfloat16
    for _ in range(5):
        step(first, w)
        step(restored, w2)
    assert torch.equal(w, w2)
