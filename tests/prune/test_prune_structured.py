"""Structured pruning: a smaller dense model, consistent config, the same function as the silenced original."""

import json

import gguf
import pytest
import torch

from slm_studio.config import DistillConfig
from slm_studio.distill.trainer import distill
from slm_studio.errors import UserError
from slm_studio.events import CancelToken
from slm_studio.export.gguf import export_gguf
from slm_studio.models.loading import load_model
from slm_studio.models.student import parameter_count
from slm_studio.prune.calibrate import collect
from slm_studio.prune.structured import apply_structure, plan_structure
from tests.prune.test_prune_unstructured import _batches, small_corpus

IDS = torch.randint(0, 49152, (2, 20), generator=torch.Generator().manual_seed(1))


@pytest.fixture
def tiny(tiny_teacher):
    model = load_model(tiny_teacher).eval()  # 4 layers, 4 query heads in 2 KV groups, head_dim 8, MLP 64
    model.config.slm_studio_layer_map = [0, 5, 10, 15]
    return model


def _group_columns(model, layer: int, kv: int) -> slice:
    group = model.config.num_attention_heads // model.config.num_key_value_heads
    dim = model.config.head_dim
    return slice(kv * group * dim, (kv + 1) * group * dim)


def test_pruned_model_computes_what_the_original_computes_with_those_groups_and_channels_silenced(tiny):
    plan = plan_structure(tiny, collect(tiny, _batches()), 0.5, 0, "activation")
    pruned = apply_structure(tiny, plan).eval()
    with torch.no_grad():
        for i, layer in enumerate(tiny.model.layers):
            for kv in set(range(2)) - set(plan.kv_heads[i]):
                layer.self_attn.o_proj.weight[:, _group_columns(tiny, i, kv)] = 0
            for channel in set(range(64)) - set(plan.channels[i]):
                layer.mlp.down_proj.weight[:, channel] = 0
        torch.testing.assert_close(pruned(IDS).logits, tiny(IDS).logits, rtol=1e-4, atol=1e-5)


def test_structured_student_is_smaller_consistent_reloads_and_exports_to_llama_cpp(tiny, tokenizer, tmp_path):
    before = parameter_count(tiny)
    pruned = apply_structure(tiny, plan_structure(tiny, collect(tiny, _batches()), 0.5, 1, "activation")).eval()
    c = pruned.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
            c.intermediate_size) == (3, 2, 1, 8, 32)
    assert pruned.model.layers[0].self_attn.q_proj.weight.shape == (16, 32)
    assert pruned.model.layers[0].self_attn.o_proj.weight.shape == (32, 16)
    assert parameter_count(pruned) < before and len(c.slm_studio_layer_map) == 3
    pruned.save_pretrained(tmp_path / "pruned")
    tokenizer.save_pretrained(tmp_path / "pruned")
    reloaded = load_model(tmp_path / "pruned").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(IDS).logits, pruned(IDS).logits)
        assert torch.isfinite(reloaded(input_ids=IDS, labels=IDS).loss)
    result = export_gguf(tmp_path / "pruned", tmp_path / "gguf")  # hidden 32 != 2 heads x 8: key_length matters
    assert result.proof.agreement >= 0.98 and result.proof.tokenizer_match
    reader = gguf.GGUFReader(result.float_path)
    assert reader.get_field("llama.attention.head_count").contents() == 2
    assert reader.get_field("llama.attention.head_count_kv").contents() == 1
    assert reader.get_field("llama.attention.key_length").contents() == 8
    assert reader.get_field("llama.feed_forward_length").contents() == 32


def test_activation_importance_removes_a_silent_group_that_magnitude_keeps(tiny):
    attn = tiny.model.layers[0].self_attn
    with torch.no_grad():
        attn.v_proj.weight[:8] = 0  # KV head 0 carries nothing: its query heads output zeros
        attn.o_proj.weight[:, _group_columns(tiny, 0, 0)] *= 10  # ... through the largest o_proj weights
    stats = collect(tiny, _batches())
    assert plan_structure(tiny, stats, 0.5, 0, "magnitude").kv_heads[0] == [0]
    assert plan_structure(tiny, stats, 0.5, 0, "activation").kv_heads[0] == [1]


def test_the_layer_that_changes_nothing_is_removed_and_the_layer_map_follows(tiny):
    with torch.no_grad():  # layer 2 adds nothing to the residual stream
        tiny.model.layers[2].self_attn.o_proj.weight.zero_()
        tiny.model.layers[2].mlp.down_proj.weight.zero_()
    stats = collect(tiny, _batches())
    assert stats.layer_change[2] == pytest.approx(0, abs=1e-6) and min(stats.layer_change[:2]) > 1e-3
    plan = plan_structure(tiny, stats, 0.0, 1, "activation")
    assert plan.layers == [0, 1, 3]
    assert apply_structure(tiny, plan).config.slm_studio_layer_map == [0, 5, 15]


def test_settings_that_would_remove_everything_are_refused(tiny):
    stats = collect(tiny, _batches(n=1))
    with pytest.raises(UserError, match="all 2 attention head groups"):
        plan_structure(tiny, stats, 0.9, 0, "activation")
    with pytest.raises(UserError, match="at least one must stay"):
        plan_structure(tiny, stats, 0.3, 4, "activation")


def test_a_structured_run_trains_resumes_and_saves_the_smaller_student(tmp_path, tiny_config):
    tiny_config.prune, tiny_config.sparsity, tiny_config.student_layers = "structured", 0.5, 3
    tiny_config.prune_layers, tiny_config.data = 1, [small_corpus(tmp_path)]
    cancel = CancelToken()
    run = tmp_path / "run"
    first = distill(tiny_config, run, cancel=cancel,
                    on_event=lambda e: cancel.cancel() if e.stage == "train" and e.step == 3 and e.metrics else None)
    assert first.status == "cancelled"
    summary = json.loads((run / "pruning.json").read_text())
    assert summary["method"] == "structured" and 0 < summary["sparsity_achieved"] < 1
    assert summary["parameters_after"] < summary["parameters_before"] == first.student_parameters + (
        summary["parameters_before"] - summary["parameters_after"])
    assert (summary["query_heads_per_layer"], summary["kv_groups_per_layer"], summary["mlp_channels_per_layer"],
            len(summary["layers_kept"])) == (2, 1, 32, 2)
    second = distill(DistillConfig.load(run / "run.toml"), run, resume=True)
    assert second.status == "finished" and second.student_parameters == summary["parameters_after"]
    student = load_model(run / "student")
    assert (student.config.num_hidden_layers, student.config.num_attention_heads) == (2, 2)
    assert student.config.slm_studio_layer_map == summary["layer_map"]
