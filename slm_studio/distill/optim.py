"""AdamW with its two moments kept in bfloat16: half the optimizer memory of torch's AdamW (2 bytes a moment
instead of 4; 326 MB less for an 81M-parameter student), the update itself computed in float32.

The first moment is rounded to nearest. The second moment is rounded stochastically: its decay of 0.1% a step
(beta2 = 0.999) is below bfloat16's resolution (0.4%), so rounded to nearest it would never shrink. Rounded up
with the probability of the remainder it decays correctly on average. The random bits come from the optimizer's
own seeded generator, saved in its state: a resumed run continues exactly, and processes trained side by side
(torchrun) round alike and keep one copy of the student. One block of random bits is drawn per step and used for
every slice: each value still sees fresh, uniform noise every step (all that unbiased rounding needs), and drawing
81M random numbers a step would cost more than the rest of the update.
"""

from __future__ import annotations

import math

import torch

SLICE = 1 << 18  # elements updated at a time: the float32 temporaries (1 MB each) stay in the CPU's cache


class BF16StateAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 seed: int = 0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self.seed = seed
        self.generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        if str(device) not in self.generators:
            self.generators[str(device)] = torch.Generator(device).manual_seed(self.seed)
        return self.generators[str(device)]

    @torch.no_grad()
    def step(self, closure=None):
        noise = {}
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(param, dtype=torch.bfloat16)
                    state["exp_avg_sq"] = torch.zeros_like(param, dtype=torch.bfloat16)
                state["step"] += 1
                step = float(state["step"])
                if param.device not in noise:
                    noise[param.device] = self._noise(param.device)
                _update(param.view(-1), param.grad.view(-1), state["exp_avg"].view(-1),
                        state["exp_avg_sq"].view(-1), lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                        weight_decay=group["weight_decay"], bias1=1 - beta1 ** step, bias2=1 - beta2 ** step,
                        noise=noise[param.device])

    def _noise(self, device: torch.device) -> torch.Tensor:
        generator = self._generator(device)
        return torch.randint(0, 1 << 16, (SLICE,), generator=generator, dtype=torch.int32, device=device)

    def state_dict(self):
        return {**super().state_dict(), "rounding": {device: g.get_state() for device, g in self.generators.items()}}

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        rounding = state_dict.pop("rounding", {})
        super().load_state_dict(state_dict)  # torch casts the moments to the parameters' type; cast them back
        for state in self.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = state[key].to(torch.bfloat16)
        for device, rng in rounding.items():
            self._generator(torch.device(device)).set_state(rng)


def _update(param, grad, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay, bias1, bias2, noise):
    for start in range(0, param.numel(), SLICE):
        rows = slice(start, start + SLICE)
        p, g = param[rows], grad[rows].float()
        m = exp_avg[rows].float().lerp_(g, 1 - beta1)
        v = exp_avg_sq[rows].float().mul_(beta2).addcmul_(g, g, value=1 - beta2)
        p.mul_(1 - lr * weight_decay)
        p.addcdiv_(m, v.sqrt().div_(math.sqrt(bias2)).add_(eps), value=-lr / bias1)
        exp_avg[rows] = m
        exp_avg_sq[rows] = stochastic_bf16(v, noise[:len(v)])


def stochastic_bf16(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """float32 -> bfloat16 (x is overwritten), rounded up with probability equal to the dropped remainder given
    `noise`, uniform int32 values in [0, 2^16) shaped like x: unbiased on average. Meant for values >= 0."""
    bits = x.view(torch.int32)
    bits.add_(noise).bitwise_and_(-(1 << 16))
    return x.to(torch.bfloat16)
