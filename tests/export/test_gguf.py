"""GGUF export: tensors, tokenizer and proof; quantization; bad input."""

import gguf
import numpy as np
import pytest
import torch

from slm_studio.errors import UserError
from slm_studio.export.gguf import export_gguf
from slm_studio.export.gguf_writer import unpermute_for_gguf
from slm_studio.export.quantize import quantize
from slm_studio.models import sources
from tests.conftest import BUNDLED


def test_rotary_permutation_interleaves_the_two_halves_of_each_head():
    # one head of dim 4, rows [a0 a1 | b0 b1] (HF halves) -> GGUF pairs [a0 b0 a1 b1]
    w = torch.arange(4.0).reshape(4, 1)
    assert unpermute_for_gguf(w, n_head=1).flatten().tolist() == [0.0, 2.0, 1.0, 3.0]


@pytest.fixture(scope="module")
def tiny_export(tiny_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-gguf")
    return export_gguf(tiny_teacher, out, quants=["Q8_0"])


def test_tiny_export_passes_its_proof_and_carries_the_tokenizer(tiny_export, tokenizer):
    assert tiny_export.proof.agreement >= 0.98 and tiny_export.proof.tokenizer_match
    reader = gguf.GGUFReader(tiny_export.float_path)
    assert reader.get_field("general.architecture").contents() == "llama"
    assert reader.get_field("llama.block_count").contents() == 4
    assert len(reader.get_field("tokenizer.ggml.tokens").data) == 49152
    assert reader.get_field("tokenizer.chat_template").contents() == tokenizer.chat_template
    assert reader.get_field("tokenizer.ggml.eos_token_id").contents() == tokenizer.eos_token_id
    assert {t.name for t in reader.tensors} >= {"token_embd.weight", "blk.0.attn_q.weight", "output_norm.weight"}


@pytest.mark.slow
def test_real_teacher_round_trip_agrees_and_sizes_are_ordered(teacher_folder, tmp_path):
    """The bundled teacher, dequantized and exported by us, predicts in llama.cpp what it predicts in torch."""
    result = export_gguf(teacher_folder, tmp_path, quants=["Q8_0", "Q4_K_M"])
    assert result.proof.agreement >= 0.98 and result.proof.tokenizer_match
    sizes = result.sizes()
    assert sizes["F16"] > sizes["Q8_0"] > sizes["Q4_K_M"]
    ours = gguf.GGUFReader(result.float_path)
    original = gguf.GGUFReader(sources.resolve(BUNDLED).path)
    for key in ("tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.chat_template", "llama.rope.freq_base", "llama.attention.head_count_kv"):
        assert ours.get_field(key).contents() == original.get_field(key).contents(), key
    assert ours.get_field("tokenizer.ggml.tokens").contents() == original.get_field("tokenizer.ggml.tokens").contents()
    assert ours.get_field("tokenizer.ggml.merges").contents() == original.get_field("tokenizer.ggml.merges").contents()
    assert np.array_equal(ours.get_field("tokenizer.ggml.token_type").contents(),
                          original.get_field("tokenizer.ggml.token_type").contents())


def test_a_failed_proof_leaves_no_file(tiny_teacher, tmp_path, monkeypatch):
    from slm_studio.export import gguf as export_module
    from slm_studio.export.proof import Proof

    monkeypatch.setattr(export_module, "prove", lambda *a: Proof(0.5, 9.0, 10, True))
    with pytest.raises(UserError, match="failed its proof"):
        export_gguf(tiny_teacher, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_unsupported_architecture_is_named(tmp_path, tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "qwen")
    tokenizer.save_pretrained(tmp_path / "qwen")
    with pytest.raises(UserError, match="architecture qwen2 is not supported yet"):
        export_gguf(tmp_path / "qwen", tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"GGUF\x03\x00\x00\x00" + b"\xff" * 64, b"plain text, not a model" * 50])
def test_quantize_refuses_damaged_files_and_leaves_nothing(tmp_path, content):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(UserError, match="not a readable GGUF"):
        quantize(bad, tmp_path / "out.gguf", "Q8_0")
    assert not (tmp_path / "out.gguf").exists()


def test_quantize_truncated_export_and_unknown_type(tiny_export, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_export.float_path.read_bytes()[: tiny_export.float_path.stat().st_size // 2])
    with pytest.raises(UserError):
        quantize(cut, tmp_path / "out.gguf", "Q8_0")
    with pytest.raises(UserError, match="unknown quant type 'Q3_X'"):
        quantize(tiny_export.float_path, tmp_path / "out.gguf", "Q3_X")
    assert not (tmp_path / "out.gguf").exists()
