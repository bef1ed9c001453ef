import pytest
import torch

from slm_studio.errors import UserError
from slm_studio.models.loading import load_model, load_tokenizer
from slm_studio.models.student import (StudentPlan, check_compatible, derive_student, evenly_spaced,
                                       parameter_count, plan_layers)
from tests.conftest import make_tiny_llama


def test_evenly_spaced_keeps_first_and_last():
    layers = evenly_spaced(30, 15)
    assert len(layers) == 15 and layers[0] == 0 and layers[-1] == 29
    assert layers == sorted(set(layers))
    assert evenly_spaced(4, 4) == [0, 1, 2, 3]
    assert evenly_spaced(30, 1) == [0]


def test_impossible_layer_plans_are_refused():
    with pytest.raises(UserError, match="cannot keep 31 layers"):
        evenly_spaced(30, 31)
    with pytest.raises(UserError, match="outside"):
        plan_layers(30, 0, [0, 30])
    with pytest.raises(UserError, match="repeats"):
        plan_layers(30, 0, [1, 1])


def test_student_copies_the_kept_teacher_layers(tiny_teacher):
    teacher = load_model(tiny_teacher)
    student = derive_student(teacher, StudentPlan([0, 3]))
    assert student.config.num_hidden_layers == 2
    assert student.config.slm_studio_layer_map == [0, 3]
    assert torch.equal(student.model.layers[1].self_attn.q_proj.weight, teacher.model.layers[3].self_attn.q_proj.weight)
    assert torch.equal(student.model.embed_tokens.weight, teacher.model.embed_tokens.weight)
    assert parameter_count(student) < parameter_count(teacher)


def test_keeping_every_layer_reproduces_the_teacher(tiny_teacher):
    teacher = load_model(tiny_teacher).eval()
    student = derive_student(teacher, StudentPlan([0, 1, 2, 3])).eval()
    ids = torch.randint(0, 49152, (1, 12))
    torch.testing.assert_close(student(ids).logits, teacher(ids).logits)


def test_narrower_mlp_keeps_the_strongest_channels(tiny_teacher):
    teacher = load_model(tiny_teacher)
    student = derive_student(teacher, StudentPlan([0, 3], mlp_ratio=0.5))
    assert student.config.intermediate_size == 32
    assert student.model.layers[0].mlp.down_proj.weight.shape == (32, 32)
    assert student(torch.randint(0, 49152, (1, 8))).logits.shape == (1, 8, 49152)


def test_vocabulary_mismatch_names_both_sizes(tiny_teacher, tokenizer, tmp_path):
    other = load_model(make_tiny_llama(tmp_path / "other", tokenizer, vocab_size=32000))
    with pytest.raises(UserError, match="teacher vocab 49152, student 32000"):
        check_compatible(load_model(tiny_teacher), tokenizer, other, tokenizer)


def test_tokenizer_mismatch_is_refused(tiny_teacher, tokenizer, tmp_path):
    other_tokenizer = load_tokenizer(tiny_teacher)
    other_tokenizer.add_tokens(["<not-in-teacher>"])
    teacher = load_model(tiny_teacher)
    with pytest.raises(UserError, match="tokenizer mismatch"):
        check_compatible(teacher, tokenizer, teacher, other_tokenizer)
