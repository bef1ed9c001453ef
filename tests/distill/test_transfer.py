import json

import pytest
import torch

from slm_studio.config import DistillConfig
from slm_studio.distill.trainer import distill
from slm_studio.distill.transfer import (attention_transfer_loss, hidden_state_loss, layer_pairs,
                                         run_with_internals, transfer_losses, use_eager_attention)
from slm_studio.models import loading
from slm_studio.models.student import StudentPlan, derive_student


def _maps(batch=2, seq=6, seed=0):
    scores = torch.randn(batch, seq, seq, generator=torch.Generator().manual_seed(seed))
    causal = torch.ones(seq, seq).tril().bool()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def test_attention_loss_is_zero_for_identical_maps_and_positive_otherwise():
    mask = torch.ones(2, 6)
    maps = _maps()
    assert attention_transfer_loss(maps, maps, mask).item() == pytest.approx(0, abs=1e-7)
    assert attention_transfer_loss(maps, _maps(seed=1), mask).item() > 0.01


def test_attention_loss_matches_a_hand_computed_kl_and_ignores_padded_queries():
    teacher = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    student = torch.tensor([[[1.0, 0.0], [0.25, 0.75]]])
    expected_row = 0.5 * torch.log(torch.tensor(0.5 / 0.25)) + 0.5 * torch.log(torch.tensor(0.5 / 0.75))
    both = attention_transfer_loss(teacher, student, torch.tensor([[1, 1]]))
    assert both.item() == pytest.approx(expected_row.item() / 2, rel=1e-5)
    first_only = attention_transfer_loss(teacher, student, torch.tensor([[1, 0]]))
    assert first_only.item() == pytest.approx(0, abs=1e-7)


def test_hidden_loss_is_zero_for_identical_or_scaled_states_and_positive_otherwise():
    states = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 5)
    assert hidden_state_loss(states, states, mask).item() == pytest.approx(0, abs=1e-6)
    assert hidden_state_loss(states, 3 * states, mask).item() == pytest.approx(0, abs=1e-6)
    assert hidden_state_loss(states, -states, mask).item() == pytest.approx(2, abs=1e-5)
    assert hidden_state_loss(states, torch.randn(2, 5, 8), mask).item() > 0.1


def _internals(model, ids, pairs, side):
    layers = [pair[side] for pair in pairs]
    return run_with_internals(model, ids, torch.ones_like(ids), layers, hidden=True, attention=True)


def _transfer(teacher, student, ids):
    for model in (teacher, student):
        use_eager_attention(model)
    pairs = layer_pairs(student, teacher)
    with torch.no_grad():
        return transfer_losses(_internals(teacher, ids, pairs, 1), _internals(student, ids, pairs, 0), pairs,
                               torch.ones_like(ids))


def test_a_student_that_keeps_every_layer_has_zero_transfer_losses_and_a_smaller_one_does_not(tiny_teacher):
    teacher = loading.load_model(tiny_teacher, torch.device("cpu")).eval()
    ids = torch.randint(0, 49152, (2, 12), generator=torch.Generator().manual_seed(0))
    same = _transfer(teacher, derive_student(teacher, StudentPlan([0, 1, 2, 3])).eval(), ids)
    assert same["attn"].item() == pytest.approx(0, abs=1e-6)
    assert same["hidden"].item() == pytest.approx(0, abs=1e-6)
    pruned = derive_student(teacher, StudentPlan([0, 3])).eval()
    assert layer_pairs(pruned, teacher) == [(0, 0), (1, 3)]
    different = _transfer(teacher, pruned, ids)
    assert different["attn"].item() > 0 and different["hidden"].item() > 0


def test_training_with_attention_and_hidden_losses_logs_them_and_adds_them_to_the_loss(tiny_config, tmp_path):
    tiny_config.attention_weight, tiny_config.hidden_weight = 1.0, 2.0
    result = distill(tiny_config, tmp_path / "run")
    assert result.status == "finished"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == tiny_config.steps
    for row in rows:
        assert row["attn"] > 0 and row["hidden"] > 0
        expected = tiny_config.alpha * row["kl"] + (1 - tiny_config.alpha) * row["ce"] + row["attn"] + 2 * row["hidden"]
        assert row["loss"] == pytest.approx(expected, rel=1e-4)


def test_transfer_losses_cannot_be_combined_with_the_cached_teacher():
    problems = DistillConfig(attention_weight=1.0, teacher_topk=64).problems()
    assert "teacher_topk" in problems["attention_weight"]
    assert "hidden_weight" in DistillConfig(hidden_weight=-1).problems()


@pytest.mark.slow
def test_real_teacher_transfer_losses_are_zero_for_its_copy_and_positive_for_a_half_depth_student(teacher_folder,
                                                                                                   tokenizer):
    teacher = loading.load_model(teacher_folder, torch.device("cpu")).eval()
    ids = tokenizer("Knowledge distillation trains a small model to imitate a large one.",
                    return_tensors="pt").input_ids
    copy = _transfer(teacher, derive_student(teacher, StudentPlan(list(range(30)))).eval(), ids)
    assert copy["attn"].item() == pytest.approx(0, abs=1e-5)
    assert copy["hidden"].item() == pytest.approx(0, abs=1e-5)
    half = _transfer(teacher, derive_student(teacher, StudentPlan(list(range(0, 30, 2)) + [29])).eval(), ids)
    assert half["attn"].item() > 0.01 and half["hidden"].item() > 0.01
