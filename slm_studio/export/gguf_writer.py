"""Write an HF Llama-family folder as a GGUF file with gguf-py: metadata, tensors, full tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from slm_studio.errors import UserError

SUPPORTED = {"llama": "LLAMA"}  # HF model_type -> gguf.MODEL_ARCH member
FLOAT_TYPES = {"F16": np.float16, "F32": np.float32}


def check_supported(config) -> str:
    if config.model_type not in SUPPORTED:
        raise UserError(f"architecture {config.model_type} is not supported yet for GGUF export "
                        f"(supported: {', '.join(SUPPORTED)})")
    return SUPPORTED[config.model_type]


def unpermute_for_gguf(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """HF stores q/k rows as [half of the rotary pairs | other half] per head; GGUF interleaves the pairs."""
    out_dim = weight.shape[0]
    return weight.reshape(n_head, 2, out_dim // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


# llama.cpp pre-tokenizer names tried, in order, when the folder does not record its own
PRE_TOKENIZER_CANDIDATES = ("default", "smollm", "llama-bpe", "qwen2", "gpt-2", "starcoder", "olmo", "tekken")


def write_gguf(model, tokenizer, folder: Path, out: Path, float_type: str = "F16") -> None:
    config = model.config
    pre = getattr(config, "gguf_tokenizer_pre", None) or detect_pre_tokenizer(model, tokenizer, folder, out.parent)
    _write(model, tokenizer, folder, out, float_type, pre, with_tensors=True)


def detect_pre_tokenizer(model, tokenizer, folder: Path, scratch: Path) -> str:
    """The llama.cpp pre-tokenizer that splits text exactly as the HF tokenizer does (tried on vocab-only files)."""
    import tempfile

    from slm_studio.export.proof import PROOF_TEXT
    from slm_studio.llama import open_llama

    expected = tokenizer(PROOF_TEXT, add_special_tokens=False)["input_ids"]
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        for pre in PRE_TOKENIZER_CANDIDATES:
            probe = Path(tmp) / f"vocab-{pre}.gguf"
            _write(model, tokenizer, folder, probe, "F32", pre, with_tensors=False)
            try:
                llm = open_llama(probe, vocab_only=True)
            except UserError:
                continue
            ids = llm.tokenize(PROOF_TEXT.encode("utf-8"), add_bos=False, special=False)
            llm.close()
            if list(ids) == list(expected):
                return pre
    raise UserError("no llama.cpp pre-tokenizer reproduces this tokenizer; its GGUF would tokenize differently")


def _write(model, tokenizer, folder: Path, out: Path, float_type: str, pre: str, with_tensors: bool) -> None:
    import gguf

    config = model.config
    arch = getattr(gguf.MODEL_ARCH, check_supported(config))
    writer = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[arch])
    _add_model_metadata(writer, config, folder, float_type)
    _add_tokenizer_metadata(writer, tokenizer, folder, config, pre)
    if with_tensors:
        _add_tensors(writer, model, arch, float_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add_model_metadata(writer, config, folder: Path, float_type: str) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(folder.name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)  # llama.cpp assumes hidden / heads without these; head pruning breaks that
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"] if getattr(config, "rope_parameters", None)
                                    else config.rope_theta))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if float_type == "F16" else gguf.LlamaFileType.ALL_F32)


def _add_tokenizer_metadata(writer, tokenizer, folder: Path, config, pre: str) -> None:
    """Byte-level BPE vocabulary, token types, merges, special ids and the chat template, from the HF files."""
    import gguf

    tokenizer_json = folder / "tokenizer.json"
    if not tokenizer_json.exists():
        raise UserError(f"{folder} has no tokenizer.json; GGUF export needs a fast (BPE) tokenizer")
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    if spec.get("model", {}).get("type") != "BPE":
        raise UserError(f"tokenizer type {spec.get('model', {}).get('type')} is not supported yet (BPE only)")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(config.vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL if i not in added else
                         gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for name, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                      ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        token_id = getattr(tokenizer, f"{name}_token_id")
        if token_id is not None:
            add(token_id)
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id)
    writer.add_add_space_prefix(False)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _add_tensors(writer, model, arch, float_type: str) -> None:
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", False)
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when output.weight is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"no GGUF name for tensor {hf_name}")
        data = tensor.detach().float()
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = unpermute_for_gguf(data, config.num_attention_heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = unpermute_for_gguf(data, config.num_key_value_heads)
        dtype = FLOAT_TYPES[float_type] if data.ndim >= 2 else np.float32  # norms stay F32, as llama.cpp expects
        writer.add_tensor(name, data.numpy().astype(dtype))
