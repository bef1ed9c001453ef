"""Derive a student from its teacher (keep some layers, optionally narrower MLPs) and check compatibility."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from slm_studio.errors import UserError


@dataclass
class StudentPlan:
    layers: list[int]  # teacher layer index of each student layer
    mlp_ratio: float = 1.0


def evenly_spaced(n_teacher: int, keep: int) -> list[int]:
    """`keep` layer indices spread over `n_teacher`, first and last included."""
    if not 1 <= keep <= n_teacher:
        raise UserError(f"cannot keep {keep} layers of a teacher with {n_teacher}")
    if keep == 1:
        return [0]
    return sorted({round(i * (n_teacher - 1) / (keep - 1)) for i in range(keep)})


def plan_layers(n_teacher: int, keep: int, explicit: list[int]) -> list[int]:
    if not explicit:
        return evenly_spaced(n_teacher, keep)
    bad = [i for i in explicit if not 0 <= i < n_teacher]
    if bad:
        raise UserError(f"layer indices {bad} lie outside the teacher's 0..{n_teacher - 1}")
    if len(set(explicit)) != len(explicit):
        raise UserError(f"layer list {explicit} repeats a layer")
    return sorted(explicit)


def derive_student(teacher: torch.nn.Module, plan: StudentPlan) -> torch.nn.Module:
    """A smaller copy of the teacher's architecture, initialised from the kept teacher layers."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(plan.layers)
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in plan.layers]
    keep_channels = None
    if plan.mlp_ratio < 1:
        config.intermediate_size = max(1, round(config.intermediate_size * plan.mlp_ratio))
        keep_channels = config.intermediate_size
    config.slm_studio_layer_map = list(plan.layers)
    student = type(teacher)(config)
    teacher_state = teacher.state_dict()
    state = {}
    for name in student.state_dict():
        state[name] = _source_tensor(name, teacher_state, plan.layers, keep_channels)
    student.load_state_dict(state)
    return student


def _source_tensor(name: str, teacher_state: dict, layers: list[int], keep_channels: int | None) -> torch.Tensor:
    if not name.startswith("model.layers."):
        return teacher_state[name].clone()
    _, _, index, rest = name.split(".", 3)
    source = teacher_state[f"model.layers.{layers[int(index)]}.{rest}"]
    if keep_channels is None or not rest.startswith("mlp."):
        return source.clone()
    prefix = f"model.layers.{layers[int(index)]}.mlp."
    channels = _important_channels(teacher_state, prefix, keep_channels)
    dim = 1 if rest.startswith("mlp.down_proj") else 0
    return source.index_select(dim, channels).clone()


def _important_channels(state: dict, prefix: str, keep: int) -> torch.Tensor:
    """MLP channels ranked by the product of their gate, up and down weight norms (a magnitude proxy)."""
    score = (state[prefix + "gate_proj.weight"].norm(dim=1) * state[prefix + "up_proj.weight"].norm(dim=1)
             * state[prefix + "down_proj.weight"].norm(dim=0))
    return score.topk(keep).indices.sort().values


def check_compatible(teacher, teacher_tokenizer, student, student_tokenizer) -> None:
    """Refuse a student that does not speak the teacher's vocabulary, naming both sides."""
    tv, sv = teacher.config.vocab_size, student.config.vocab_size
    if tv != sv:
        raise UserError(f"vocabulary mismatch: teacher vocab {tv}, student {sv}")
    t_vocab, s_vocab = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if t_vocab != s_vocab:
        differing = sum(1 for tok, i in s_vocab.items() if t_vocab.get(tok) != i)
        raise UserError(f"tokenizer mismatch: teacher tokenizer has {len(t_vocab)} tokens, student "
                        f"{len(s_vocab)}, and {differing} of the student's tokens map to other ids")


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights are counted once


def float_bytes(model: torch.nn.Module, bytes_per_weight: int = 2) -> int:
    """Weight bytes at a given precision (2 = F16/BF16, 4 = F32)."""
    return parameter_count(model) * bytes_per_weight
