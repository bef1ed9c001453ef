"""Structured pruning of a student of the real bundled teacher: smaller, consistent, and proven in llama.cpp."""

import gguf
import pytest
import torch

from slm_studio.data.corpus import load_records, tokenize
from slm_studio.export.gguf import export_gguf
from slm_studio.models.loading import load_model
from slm_studio.models.student import StudentPlan, derive_student, parameter_count
from slm_studio.prune.calibrate import calibration_batches, collect
from slm_studio.prune.structured import apply_structure, plan_structure


@pytest.mark.slow
def test_a_structured_30_percent_student_of_the_real_teacher_exports_and_llama_cpp_agrees(
        teacher_folder, tokenizer, tmp_path):
    teacher = load_model(teacher_folder).eval()
    student = derive_student(teacher, StudentPlan([0, 10, 20, 29])).eval()
    del teacher
    data = tokenize(load_records("python-docs")[:60], tokenizer, 64)
    stats = collect(student, calibration_batches(data, 2, 4, seed=0))
    pruned = apply_structure(student, plan_structure(student, stats, 0.3, 1, "activation")).eval()
    c = pruned.config  # SmolLM2: 9 query heads in 3 KV groups of head_dim 64, MLP 1536
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
            c.intermediate_size) == (3, 6, 2, 64, 1075)
    assert len(c.slm_studio_layer_map) == 3 and set(c.slm_studio_layer_map) <= {0, 10, 20, 29}
    layer_parameters = [parameter_count(m.model.layers) for m in (student, pruned)]
    assert layer_parameters[1] < 0.55 * layer_parameters[0]  # 3 of 4 layers, each 2/3 attention, 70% MLP
    assert parameter_count(pruned) == parameter_count(student) - layer_parameters[0] + layer_parameters[1]
    with torch.no_grad():
        ids = data.input_ids[:2]
        assert torch.isfinite(pruned(input_ids=ids, attention_mask=data.attention_mask[:2], labels=ids).loss)

    pruned.save_pretrained(tmp_path / "pruned")
    tokenizer.save_pretrained(tmp_path / "pruned")
    result = export_gguf(tmp_path / "pruned", tmp_path / "gguf")
    print(f"proof: {result.proof.agreement:.1%} of {result.proof.positions} next tokens agree, largest logit "
          f"difference {result.proof.max_logit_diff:.3f}; F16 file {result.sizes()['F16'] / 1e6:.1f} MB")
    assert result.proof.agreement >= 0.98 and result.proof.tokenizer_match
    reader = gguf.GGUFReader(result.float_path)
    assert reader.get_field("llama.attention.head_count").contents() == 6
    assert reader.get_field("llama.attention.key_length").contents() == 64
    assert reader.get_field("llama.embedding_length").contents() == 576  # 576 != 6 x 64: key_length is needed
