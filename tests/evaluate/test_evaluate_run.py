"""The evaluation stage: its numbers agree with direct computations, its files are written, bad input is named."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from slm_studio.config import DistillConfig
from slm_studio.data.corpus import load_records, split_holdout, tokenize
from slm_studio.distill.trainer import distill
from slm_studio.errors import Cancelled, UserError
from slm_studio.evaluate.agreement import agreement
from slm_studio.evaluate.pareto import pareto_front
from slm_studio.evaluate.perplexity import gguf_perplexity, perplexity
from slm_studio.evaluate.report import markdown
from slm_studio.evaluate.result import EvalResult, QuantPoint
from slm_studio.evaluate.run import evaluate_run
from slm_studio.events import CancelToken
from slm_studio.export.gguf import export_gguf
from slm_studio.models.loading import load_model
from tests.conftest import make_tiny_llama

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def plain_agreement(teacher, student, data):
    """Full [batch, seq, vocab] logits, one position at a time: the reference for the chunked computation."""
    matches, kl, n = 0, 0.0, 0
    with torch.no_grad():
        log_t = F.log_softmax(teacher(input_ids=data.input_ids, attention_mask=data.attention_mask).logits, -1)
        log_s = F.log_softmax(student(input_ids=data.input_ids, attention_mask=data.attention_mask).logits, -1)
    for i in range(len(data)):
        for t in range(data.input_ids.shape[1] - 1):
            if data.target_mask[i, t + 1]:
                p, q = log_t[i, t], log_s[i, t]
                matches += int(p.argmax() == q.argmax())
                kl += float((p.exp() * (p - q)).sum())
                n += 1
    return matches / n, kl / n, n


@pytest.fixture(scope="module")
def sharp_teacher(tmp_path_factory, tokenizer):
    """A tiny random Llama with large weights, so its predictions are far from uniform."""
    return make_tiny_llama(tmp_path_factory.mktemp("sharp-teacher"), tokenizer, initializer_range=0.2)


@pytest.fixture(scope="module")
def held(tokenizer):
    records = load_records("python-docs")[:40]
    return split_holdout(tokenize(records, tokenizer, 32), 0.1, 0)[1].subset(list(range(6)))


def test_agreement_and_kl_match_a_plain_full_logits_loop(sharp_teacher, tmp_path, tokenizer, held):
    teacher = load_model(sharp_teacher).eval()
    student = load_model(make_tiny_llama(tmp_path / "other", tokenizer, seed=1, initializer_range=0.2)).eval()
    found = agreement(teacher, student, held, batch_size=4, chunk_tokens=7)  # chunks cross sequence borders
    top1, kl, n = plain_agreement(teacher, student, held)
    assert found.tokens == n == held.target_tokens
    assert found.top1 == pytest.approx(top1) and found.mean_kl == pytest.approx(kl, rel=1e-4)
    assert found.mean_kl > 0.1
    assert found.teacher_ppl == pytest.approx(perplexity(teacher, held, 4), rel=1e-5)
    assert found.student_ppl == pytest.approx(perplexity(student, held, 4), rel=1e-5)
    same = agreement(teacher, teacher, held, batch_size=4)
    assert same.top1 == 1.0 and same.mean_kl == pytest.approx(0.0, abs=1e-5)


def test_llama_cpp_perplexity_of_an_f16_gguf_matches_torch(sharp_teacher, tmp_path, held):
    f16 = export_gguf(sharp_teacher, tmp_path).float_path
    ours = perplexity(load_model(sharp_teacher), held, batch_size=4)
    theirs = gguf_perplexity(f16, held, threads=1)
    assert abs(math.log(ours / 49152)) > 0.3  # a sharp model: far from the uniform guess's perplexity
    assert theirs == pytest.approx(ours, rel=0.01)


def test_pareto_front_keeps_the_points_nothing_beats():
    points = [QuantPoint("t", q, "", size, ppl, 0, 0) for q, size, ppl in
              [("a", 100, 20.0), ("b", 50, 22.0), ("c", 60, 25.0), ("d", 30, 40.0), ("e", 100, 21.0)]]
    assert [p.quant for p in pareto_front(points)] == ["d", "b", "a"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, sharp_teacher):
    run = tmp_path_factory.mktemp("eval") / "run"
    distill(DistillConfig(teacher=str(sharp_teacher), student_layers=2, steps=3, batch_size=2, seq_len=32,
                          warmup_steps=1, eval_every=3, eval_batches=2, checkpoint_every=3, lr=1e-3), run)
    return run


@pytest.fixture(scope="module")
def evaluated(tiny_run):
    from slm_studio.app.pareto_png import save_pareto_png

    events = []
    result = evaluate_run(tiny_run, ["Q8_0"], threads=1, plot_writer=save_pareto_png, on_event=events.append)
    return result, events


def test_report_numbers_agree_with_a_direct_computation(tiny_run, evaluated, sharp_teacher, tokenizer):
    result, events = evaluated
    config = DistillConfig.load(tiny_run / "run.toml")
    _, held = split_holdout(tokenize(load_records("python-docs"), tokenizer, 32), config.holdout_fraction, 0)
    held = held.subset(list(range(4)))  # the trainer's evaluation: eval_batches x batch_size sequences
    teacher, student = load_model(sharp_teacher).eval(), load_model(tiny_run / "student").eval()
    assert result.held_out_tokens == held.target_tokens
    assert result.teacher_ppl == pytest.approx(perplexity(teacher, held, 2), rel=1e-5)
    assert result.student_ppl == pytest.approx(perplexity(student, held, 2), rel=1e-5)
    top1, kl, _ = plain_agreement(teacher, student, held)
    assert result.top1_agreement == pytest.approx(top1) and result.mean_kl == pytest.approx(kl, rel=1e-4)
    # the same held-out tokens as the trainer's own measurements
    baseline, summary = (json.loads((tiny_run / f).read_text()) for f in ("baseline.json", "summary.json"))
    assert result.untrained_source == "re-derived from the teacher"
    assert result.untrained_ppl == pytest.approx(baseline["untrained_ppl"], rel=1e-5)
    assert result.student_ppl == pytest.approx(summary["student_ppl"], rel=1e-5)
    # GGUF points: real files, llama.cpp F16 perplexity close to torch, sizes ordered
    assert [p.label for p in result.points] == ["teacher F16", "teacher Q8_0", "student F16", "student Q8_0"]
    for p in result.points:
        assert p.size_bytes == (tiny_run / "gguf" / "x").parent.joinpath(p.path).stat().st_size
        assert p.prompt_tps > 0 and p.generation_tps > 0 and math.isfinite(p.perplexity)
    assert result.point("student", "F16").perplexity == pytest.approx(result.student_ppl, rel=0.01)
    assert result.point("teacher", "F16").perplexity == pytest.approx(result.teacher_ppl, rel=0.01)
    assert result.point("student", "Q8_0").size_bytes < result.point("student", "F16").size_bytes
    assert (tiny_run / "gguf" / "student-Q8_0.gguf").exists()
    assert result.front and all(label in [p.label for p in result.points] for label in result.front)
    assert events[-1].step == events[-1].total and all(e.stage == "evaluate" for e in events)


def test_report_files_are_written(tiny_run, evaluated):
    result, _ = evaluated
    report = (tiny_run / "report.md").read_text()
    assert "![Held-out perplexity against file size](pareto.png)" in report
    assert "| student | Q8_0 |" in report and f"{result.teacher_ppl:,.2f}" in report
    png = (tiny_run / "pareto.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 20_000
    assert EvalResult.load(tiny_run / "eval.json") == result


def test_pruned_runs_show_their_sparsity_and_the_size_note(evaluated):
    from slm_studio.prune import SIZE_NOTE

    result, _ = evaluated
    pruned = EvalResult.from_dict({**result.to_dict(), "pruning": {"method": "unstructured",
                                                                   "sparsity_achieved": 0.5}})
    text = markdown(pruned, "pareto.png")
    assert "| sparsity |" in text and "| student | F16 | 50.0% |" in text and SIZE_NOTE in text
    assert SIZE_NOTE not in markdown(result, None) and "pareto.png" not in markdown(result, None)


def test_bad_input_is_named(tmp_path, tiny_run):
    with pytest.raises(UserError, match="run directory not found"):
        evaluate_run(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no run.toml"):
        evaluate_run(tmp_path)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.toml").write_text((tiny_run / "run.toml").read_text())
    with pytest.raises(UserError, match="no finished student"):
        evaluate_run(unfinished)
    with pytest.raises(UserError, match="unknown quant type 'Q3_X'"):
        evaluate_run(tiny_run, ["Q3_X"])


def test_cancel_stops_before_any_file_is_written(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval.json", "report.md", "pareto.png", "gguf"))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        evaluate_run(copy, ["Q8_0"], cancel=token)
    assert not (copy / "eval.json").exists() and not (copy / "report.md").exists()


def test_cli_prints_the_tables_and_names_bad_input(tiny_run, evaluated, capsys, tmp_path):
    from slm_studio.cli import main

    assert main(["eval", str(tiny_run), "--quants", "Q8_0", "--threads", "1"]) == 0  # reuses the GGUF files
    out = capsys.readouterr().out
    assert "distilled student perplexity" in out and "student  Q8_0" in out and str(tiny_run / "report.md") in out
    assert main(["eval", str(tmp_path / "nowhere")]) == 2
    assert "run directory not found" in capsys.readouterr().err
