"""Shared fixtures: the real bundled teacher (dequantized into a per-session cache) and tiny random Llamas
that use its real tokenizer, so fast tests exercise the same vocabulary and chat template."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BUNDLED = "SmolLM2-135M-Instruct"


def pytest_addoption(parser):
    parser.addoption("--bundle", action="store_true", help="also build and run the app bundle (several minutes)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--bundle"):
        return
    skip = pytest.mark.skip(reason="builds the PyInstaller bundle (several minutes): run with --bundle")
    for item in items:
        if "bundle" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    os.environ["SLM_STUDIO_CACHE"] = str(tmp_path_factory.mktemp("slm-cache"))
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    yield


@pytest.fixture(scope="session")
def teacher_folder() -> Path:
    """The bundled teacher as a safetensors HF folder (dequantized once per test session)."""
    from slm_studio.models import loading, sources

    return loading.hf_folder(sources.resolve(BUNDLED))


@pytest.fixture(scope="session")
def tokenizer(teacher_folder):
    from slm_studio.models.loading import load_tokenizer

    return load_tokenizer(teacher_folder)


def make_tiny_llama(folder: Path, tokenizer, vocab_size: int = 49152, layers: int = 4, seed: int = 0,
                    initializer_range: float = 0.02) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, initializer_range=initializer_range,
                         bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def small_gguf(path: Path) -> Path:
    """A valid GGUF of one 3 x 4 tensor and a 3-token vocabulary: for file-format tests, not for llama.cpp."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_token_list(["a", "b", "c"])
    writer.add_tensor("token_embd.weight", np.ones((3, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tokenizer) -> Path:
    """A 4-layer random Llama with the bundled teacher's tokenizer, as an HF folder."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-teacher"), tokenizer)


@pytest.fixture
def tiny_config(tiny_teacher):
    from slm_studio.config import DistillConfig

    return DistillConfig(teacher=str(tiny_teacher), student_layers=2, steps=6, batch_size=2, seq_len=32,
                         warmup_steps=2, eval_every=3, eval_batches=2, checkpoint_every=3, lr=1e-3)
