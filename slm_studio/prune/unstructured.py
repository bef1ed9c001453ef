"""Unstructured pruning: zero the least important single weights, then keep them zero while training.

Scores: `magnitude` is |W_ij|; `activation` is |W_ij| * ||X_j|| (the weight times the L2 norm of its input column
over the calibration tokens), so a small weight on a loud input survives and a large one on a silent input goes.
Scope: `layer` prunes the same share of every weight matrix; `global` ranks all prunable weights together.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from slm_studio.errors import UserError
from slm_studio.fileio import atomic_path
from slm_studio.prune.calibrate import Activations, prunable_linears

Masks = dict[str, torch.Tensor]  # parameter name -> bool tensor of its shape, True where the weight is kept


def weight_scores(model, score: str, stats: Activations | None = None) -> dict[str, torch.Tensor]:
    scores = {}
    for name, module in prunable_linears(model).items():
        weight = module.weight.detach().abs().float()
        scores[name] = weight * stats.input_norm(name).to(weight.device) if score == "activation" else weight
    return scores


def choose_masks(scores: dict[str, torch.Tensor], sparsity: float, scope: str) -> Masks:
    if scope == "layer":
        return {name: _keep_highest(s, sparsity) for name, s in scores.items()}
    flat = torch.cat([s.flatten() for s in scores.values()])
    drop = round(sparsity * flat.numel())
    if drop == 0:
        return {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
    threshold = flat.kthvalue(drop).values  # ties at the threshold are pruned too; with float scores, rare
    return {name: s > threshold for name, s in scores.items()}


def _keep_highest(score: torch.Tensor, sparsity: float) -> torch.Tensor:
    keep = torch.ones(score.numel(), dtype=torch.bool, device=score.device)
    drop = round(sparsity * score.numel())
    if drop:
        keep[score.flatten().topk(drop, largest=False).indices] = False
    return keep.view_as(score)


def apply_masks(model, masks: Masks) -> None:
    """Set every pruned weight to exactly zero (optimizer steps and weight decay would otherwise revive it)."""
    with torch.no_grad():
        for name, keep in masks.items():
            model.get_parameter(name).masked_fill_(~keep, 0.0)


def hold_masks(optimizer: torch.optim.Optimizer, model, masks: Masks | None):
    """Re-apply the masks after every optimizer step; returns the hook handle (None without masks)."""
    if not masks:
        return None
    return optimizer.register_step_post_hook(lambda *_: apply_masks(model, masks))


def zero_share(model, masks: Masks) -> tuple[float, float]:
    """(share of the prunable weights that are zero, share of all parameters that are zero), measured."""
    prunable = sum(m.numel() for m in masks.values())
    zero_prunable = sum(int((model.get_parameter(name) == 0).sum()) for name in masks)
    params = list(model.parameters())
    return zero_prunable / prunable, sum(int((p == 0).sum()) for p in params) / sum(p.numel() for p in params)


def save_masks(path: Path, masks: Masks) -> None:
    with atomic_path(path) as tmp:
        save_file({name: keep.cpu().contiguous() for name, keep in masks.items()}, tmp)


def load_masks(path: Path, model) -> Masks:
    if not Path(path).exists():
        raise UserError(f"{path} is missing: the run was pruned, and its masks are needed to resume it")
    masks = load_file(path)
    for name, keep in masks.items():
        if model.get_parameter(name).shape != keep.shape:
            raise UserError(f"{path} does not fit the checkpoint's student ({name})")
    device = next(model.parameters()).device
    return {name: keep.to(device) for name, keep in masks.items()}
