"""Offline by construction: the whole pipeline runs with every outgoing connection refused."""

import os
import socket
import subprocess
import sys

import pytest

from slm_studio.chat.session import ChatSession, ChatSettings
from slm_studio.config import DistillConfig
from slm_studio.distill.trainer import distill
from slm_studio.export.gguf import export_gguf


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted while offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_distill_export_quantize_chat_without_network(no_network, tmp_path, tiny_teacher):
    config = DistillConfig(teacher=str(tiny_teacher), student_layers=2, steps=2, batch_size=2, seq_len=32,
                           eval_batches=1)
    distill(config, tmp_path / "run")
    result = export_gguf(tmp_path / "run", quants=["Q8_0"])
    session = ChatSession(result.files["Q8_0"], n_ctx=256)
    assert "".join(session.stream([{"role": "user", "content": "hi"}], ChatSettings(max_tokens=4)))
    session.close()
    assert no_network == []
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


@pytest.mark.parametrize("front_end", ["slm_studio.cli", "slm_studio.app"])
def test_front_ends_switch_the_hub_off_even_when_the_shell_switched_it_on(front_end):
    """The CLI and the app import slm_studio first, which forces the offline switches before any hub library."""
    code = (f"import {front_end}, huggingface_hub.constants as c, transformers.utils.hub as h, os; "
            "from transformers.integrations.hub_kernels import _kernels_enabled as k; "
            "print(c.HF_HUB_OFFLINE, h.is_offline_mode(), os.environ['TRANSFORMERS_OFFLINE'], k())")
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "USE_HUB_KERNELS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "1", "False"]
