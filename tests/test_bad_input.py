"""Bad input through the CLI, each answered with one line on stderr and exit code 2, never a traceback.

Already covered elsewhere (not repeated here): corrupt/empty/truncated GGUF and huge claimed tensors or field
counts in the header scan (tests/models/test_sources.py), damaged GGUF to quantize/chat and a folder that is not a
run (tests/test_cli.py::test_bad_gguf_input_is_one_line_and_exit_code_2), empty corpus and student vocabulary
mismatch (tests/test_cli.py::test_empty_corpus_and_vocab_mismatch_are_refused), unknown keys, wrong types and
broken TOML (tests/test_cli.py::test_bad_config_files), binary / non-UTF-8 / empty corpora at the loader
(tests/data/test_corpus.py::test_bad_text_files_are_refused), a tokenizer mismatch
(tests/models/test_student.py::test_tokenizer_mismatch_is_refused).
"""

from __future__ import annotations

import shutil
import struct

import pytest

from slm_studio.cli import main
from slm_studio.models import sources
from tests.conftest import BUNDLED, small_gguf


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def _assert_one_clean_line(code, err, message):
    """Exit code 2 and one error line at the end (progress lines may precede it on stderr)."""
    assert code == 2, err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("slm-studio: error: ") and err.count("slm-studio: error: ") == 1, err
    assert "Traceback" not in err
    assert message in last, err


def _distill(teacher, out, *extra):
    return ["distill", "--teacher", teacher, "--student-layers", "2", "--steps", "1", "--batch-size", "1",
            "--seq-len", "16", "--out", out, *extra]


# --- damaged model files --------------------------------------------------------------------------------------

def _truncated_gguf(tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(sources.resolve(BUNDLED).path, "rb") as f:
        cut.write_bytes(f.read(3_000_000))
    return cut


def _garbage_gguf(tmp_path):
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(256)) * 40)
    return bad


def _huge_tensor_gguf(tmp_path):
    """A real, small GGUF whose first tensor then claims 2**40 rows."""
    path = small_gguf(tmp_path / "huge.gguf")
    data = bytearray(path.read_bytes())
    name = b"token_embd.weight"
    dims_at = data.index(name) + len(name) + 4
    data[dims_at:dims_at + 8] = struct.pack("<Q", 2**40)
    path.write_bytes(bytes(data))
    return path


def _folder_with_damaged_weights(tmp_path, tiny_teacher, how):
    folder = tmp_path / f"damaged-{how}"
    shutil.copytree(tiny_teacher, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if how == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        weights.write_bytes(b"\xff" * 64 + data[64:1000])
    else:  # a header that claims far more bytes than the file holds
        weights.write_bytes(struct.pack("<Q", 2**40) + data[8:1000])
    return folder


GGUF_FILES = {"truncated": _truncated_gguf, "garbage": _garbage_gguf, "huge tensors": _huge_tensor_gguf}


@pytest.mark.parametrize("kind", sorted(GGUF_FILES))
def test_damaged_gguf_as_teacher(capsys, tmp_path, kind):
    path = GGUF_FILES[kind](tmp_path)
    code, err = _run(capsys, _distill(path, tmp_path / "run"))
    _assert_one_clean_line(code, err, str(path))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", sorted(GGUF_FILES))
def test_damaged_gguf_as_chat_model(capsys, tmp_path, kind):
    path = GGUF_FILES[kind](tmp_path)
    code, err = _run(capsys, ["chat", path, "--prompt", "hi", "--max-tokens", "2"])
    _assert_one_clean_line(code, err, "not a readable GGUF")


@pytest.mark.parametrize("how", ["truncated", "garbage", "huge header"])
def test_damaged_safetensors_as_teacher_student_and_export_source(capsys, tmp_path, tiny_teacher, how):
    folder = _folder_with_damaged_weights(tmp_path, tiny_teacher, how)
    code, err = _run(capsys, _distill(folder, tmp_path / "r1"))
    _assert_one_clean_line(code, err, folder.name)
    assert not (tmp_path / "r1").exists()
    code, err = _run(capsys, _distill(tiny_teacher, tmp_path / "r2", "--student-model", folder))
    _assert_one_clean_line(code, err, folder.name)
    assert not (tmp_path / "r2").exists()
    code, err = _run(capsys, ["export", folder, "--out", tmp_path / "gguf"])
    _assert_one_clean_line(code, err, folder.name)
    assert not (tmp_path / "gguf").exists() or not any((tmp_path / "gguf").iterdir())


def test_damaged_config_json_as_teacher(capsys, tmp_path, tiny_teacher):
    folder = tmp_path / "bad-config"
    shutil.copytree(tiny_teacher, folder)
    (folder / "config.json").write_bytes(b"{\"vocab_size\": \xff")
    code, err = _run(capsys, _distill(folder, tmp_path / "run"))
    _assert_one_clean_line(code, err, "config.json")


# --- corpora --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content, message", [
    ("binary.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8, "not UTF-8"),
    ("zeros.txt", b"text\x00\x00\x00" * 50, "looks binary"),
    ("latin1.txt", "Grüße aus Köln, naïve café\n".encode("latin-1") * 20, "not UTF-8"),
    ("latin1.jsonl", '{"text": "café"}\n'.encode("latin-1"), "not UTF-8"),
    ("blank.txt", b"\n\n   \n", "empty"),
    ("empty.jsonl", b"", "empty"),
])
def test_bad_corpora(capsys, tmp_path, tiny_teacher, name, content, message):
    corpus = tmp_path / name
    corpus.write_bytes(content)
    code, err = _run(capsys, _distill(tiny_teacher, tmp_path / "run", "--data", corpus))
    _assert_one_clean_line(code, err, message)
    assert not (tmp_path / "run").exists()


# --- config files ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("toml, message", [
    ("temperature = 'hot'\n", "temperature must be"),
    ("data = 5\n", "data must be"),
    ("student_layer_list = ['a']\n", "student_layer_list must be a list of int"),
    ("data = [1, 2]\n", "data must be a list of str"),
    ("[extra]\nsteps = 5\n", "unknown setting"),
    ("steps = true\n", "steps must be int"),
])
def test_more_bad_config_files(capsys, tmp_path, toml, message):
    (tmp_path / "c.toml").write_text(toml)
    code, err = _run(capsys, ["distill", "--config", tmp_path / "c.toml", "--out", tmp_path / "run"])
    _assert_one_clean_line(code, err, message)


def test_binary_config_file(capsys, tmp_path):
    (tmp_path / "c.toml").write_bytes(b"\xff\xfe\x00steps")
    code, err = _run(capsys, ["distill", "--config", tmp_path / "c.toml", "--out", tmp_path / "run"])
    _assert_one_clean_line(code, err, "c.toml")
