"""The CLI: flags over configs, run.toml round trips, and bad input answered with one line and exit code 2."""

import json
import re

import pytest

from slm_studio.cli import main
from slm_studio.config import DistillConfig


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _tiny_flags(tiny_teacher, out):
    return ["distill", "--teacher", str(tiny_teacher), "--student-layers", "2", "--steps", "2", "--batch-size", "2",
            "--seq-len", "32", "--out", str(out)]


def test_models_lists_the_bundled_teacher(capsys):
    code, out, _ = _run(capsys, "models")
    assert code == 0 and "SmolLM2-135M-Instruct" in out and "49152" in out and "llama" in out


def test_distill_writes_run_toml_that_repeats_the_run(capsys, tiny_teacher, tmp_path):
    code, out, _ = _run(capsys, *_tiny_flags(tiny_teacher, tmp_path / "a"), "--temperature", "3", "--alpha", "0.25")
    assert code == 0 and "distilled student" in out
    saved = DistillConfig.load(tmp_path / "a" / "run.toml")
    assert (saved.temperature, saved.alpha, saved.steps, saved.student_layers) == (3.0, 0.25, 2, 2)
    code, _, _ = _run(capsys, "distill", "--config", str(tmp_path / "a" / "run.toml"), "--out", str(tmp_path / "b"))
    assert code == 0 and DistillConfig.load(tmp_path / "b" / "run.toml") == saved
    first = [json.loads(x)["loss"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(x)["loss"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert first == pytest.approx(again)


@pytest.mark.parametrize("flags, message", [
    (["--teacher", "no-such-teacher"], "unknown teacher 'no-such-teacher'"),
    (["--teacher", "/missing/model.gguf"], "not found"),
    (["--temperature", "0"], "temperature must be > 0"),
    (["--alpha", "1.5"], r"alpha must lie in \[0, 1\]"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--loss", "l2"], "loss must be one of"),
    (["--data", "/missing/corpus.txt"], "data file not found"),
    (["--student-layer-list", "1,x"], "comma-separated integers"),
])
def test_bad_input_is_one_line_and_exit_code_2(capsys, tmp_path, flags, message):
    code, _, err = _run(capsys, "distill", "--out", str(tmp_path / "run"), *flags)
    assert code == 2
    assert err.startswith("slm-studio: error: ") and err.count("\n") == 1
    assert re.search(message, err)
    assert not (tmp_path / "run").exists()


def test_empty_corpus_and_vocab_mismatch_are_refused(capsys, tmp_path, tiny_teacher, tokenizer):
    from tests.conftest import make_tiny_llama

    (tmp_path / "empty.txt").write_text("")
    code, _, err = _run(capsys, *_tiny_flags(tiny_teacher, tmp_path / "r1"), "--data", str(tmp_path / "empty.txt"))
    assert code == 2 and "empty" in err and not (tmp_path / "r1").exists()
    other = make_tiny_llama(tmp_path / "other", tokenizer, vocab_size=32000)
    code, _, err = _run(capsys, *_tiny_flags(tiny_teacher, tmp_path / "r2"), "--student-model", str(other))
    assert code == 2 and "teacher vocab 49152, student 32000" in err and not (tmp_path / "r2").exists()


def test_existing_run_is_never_written_over(capsys, tmp_path, tiny_teacher):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.toml").write_text("steps = 5\n")
    code, _, err = _run(capsys, *_tiny_flags(tiny_teacher, run))
    assert code == 2 and "already holds files" in err
    assert (run / "run.toml").read_text() == "steps = 5\n"


@pytest.mark.parametrize("toml, message", [
    ("stepz = 5\n", "unknown setting"),
    ("steps = 'many'\n", "steps must be int"),
    ("steps = [\n", "not valid TOML"),
])
def test_bad_config_files(capsys, tmp_path, toml, message):
    (tmp_path / "c.toml").write_text(toml)
    code, _, err = _run(capsys, "distill", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"))
    assert code == 2 and message in err


def test_distill_export_quantize_chat_end_to_end(capsys, tiny_teacher, tmp_path):
    run = tmp_path / "run"
    assert _run(capsys, *_tiny_flags(tiny_teacher, run))[0] == 0
    code, out, _ = _run(capsys, "export", str(run), "--quant", "Q8_0")
    assert code == 0 and "proof: llama.cpp agrees" in out
    assert (run / "gguf" / "student-F16.gguf").exists() and (run / "gguf" / "student-Q8_0.gguf").exists()
    code, out, _ = _run(capsys, "quantize", str(run / "gguf" / "student-F16.gguf"), str(tmp_path / "q4.gguf"),
                        "--type", "Q4_0")
    assert code == 0 and (tmp_path / "q4.gguf").stat().st_size < (run / "gguf" / "student-F16.gguf").stat().st_size
    code, out, _ = _run(capsys, "chat", str(run), "--prompt", "Hello!", "--max-tokens", "8", "--temperature", "0")
    assert code == 0 and "tokens/s" in out and "first token" in out


@pytest.mark.parametrize("argv, message", [
    (["quantize", "{bad}", "{tmp}/o.gguf", "--type", "Q8_0"], "not a readable GGUF"),
    (["quantize", "{tmp}/missing.gguf", "{tmp}/o.gguf", "--type", "Q8_0"], "not found"),
    (["quantize", "{bad}", "{tmp}/o.gguf", "--type", "Q9"], "unknown quant type"),
    (["chat", "{bad}", "--prompt", "hi"], "not a readable GGUF"),
    (["chat", "{txt}", "--prompt", "hi"], None),
    (["export", "{tmp}", "--quant", "Q8_0"], "neither a run directory nor"),
])
def test_bad_gguf_input_is_one_line_and_exit_code_2(capsys, tmp_path, argv, message):
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + b"\x00" * 10)
    (tmp_path / "notes.txt").write_text("not a model")
    argv = [a.format(bad=tmp_path / "bad.gguf", tmp=tmp_path, txt=tmp_path / "notes.txt") for a in argv]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and err.startswith("slm-studio: error: ") and err.count("\n") == 1
    assert message is None or message in err
    assert not (tmp_path / "o.gguf").exists()


def test_no_command_without_a_display_explains_instead_of_crashing(capsys, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = _run(capsys)
    assert code == 2 and "no display" in err
