"""Evaluate a real (if very short) distillation of the bundled SmolLM2-135M-Instruct teacher (slow)."""

import json
import math

import pytest

from slm_studio.config import DistillConfig
from slm_studio.data.corpus import load_records
from slm_studio.distill.trainer import distill
from slm_studio.evaluate.run import evaluate_run
from tests.conftest import BUNDLED


@pytest.mark.slow
def test_real_teacher_run_is_evaluated_with_llama_cpp_matching_torch(tmp_path, teacher_folder):
    from slm_studio.app.pareto_png import save_pareto_png

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(r["text"] for r in load_records("python-docs")[:25]))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\nName a primary colour.\n")
    run = tmp_path / "run"
    distill(DistillConfig(teacher=BUNDLED, student_layers=2, steps=2, batch_size=2, seq_len=32, warmup_steps=1,
                          eval_every=2, eval_batches=3, checkpoint_every=2, data=[str(corpus)],
                          teacher_prompts=str(prompts), generate_max_tokens=12), run)
    result = evaluate_run(run, ["Q8_0"], threads=1, plot_writer=save_pareto_png, speed_tokens=8)

    baseline = json.loads((run / "baseline.json").read_text())
    assert result.teacher_ppl == pytest.approx(baseline["teacher_ppl"], rel=1e-4)  # the trainer's held-out split
    assert result.untrained_ppl == pytest.approx(baseline["untrained_ppl"], rel=1e-4)
    assert result.teacher_ppl < 100 < result.student_ppl < result.untrained_ppl  # two layers of thirty, 2 steps
    assert result.mean_kl < result.untrained_mean_kl and 0 <= result.top1_agreement <= 1
    teacher_f16, student_f16 = result.point("teacher", "F16"), result.point("student", "F16")
    # llama.cpp agrees with torch on the same tokens (log scale: the student's perplexity is astronomic)
    assert math.log(teacher_f16.perplexity) == pytest.approx(math.log(result.teacher_ppl), rel=0.01)
    assert math.log(student_f16.perplexity) == pytest.approx(math.log(result.student_ppl), rel=0.01)
    assert result.point("teacher", "Q8_0").perplexity == pytest.approx(teacher_f16.perplexity, rel=0.05)
    assert student_f16.size_bytes < teacher_f16.size_bytes / 2
    assert result.point("student", "Q8_0").size_bytes < student_f16.size_bytes * 0.6
    assert "student Q8_0" in result.front  # the smallest file is never beaten on size
    front = [result.point(*label.split()) for label in result.front]
    for p in result.points:  # every other file is matched or beaten on both axes by a point of the front
        assert any(f.size_bytes <= p.size_bytes and f.perplexity <= p.perplexity for f in front)
    assert (run / "pareto.png").stat().st_size > 20_000 and "| teacher | Q8_0 |" in (run / "report.md").read_text()
