"""A few real distillation steps from the bundled SmolLM2-135M-Instruct teacher (slow: about a minute)."""

import json
import math

import pytest
from transformers import AutoModelForCausalLM

from slm_studio.config import DistillConfig
from slm_studio.distill.trainer import distill
from tests.conftest import BUNDLED


@pytest.mark.slow
def test_real_teacher_writes_answers_and_distills_a_few_steps(tmp_path, teacher_folder):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\nName a primary colour.\n")
    config = DistillConfig(teacher=BUNDLED, student_layers=6, steps=4, batch_size=2, seq_len=64, warmup_steps=1,
                           eval_every=4, eval_batches=2, checkpoint_every=2, teacher_prompts=str(prompts),
                           generate_max_tokens=16)
    result = distill(config, tmp_path / "run")

    answers = [json.loads(x) for x in (tmp_path / "run" / "teacher_answers.jsonl").read_text().splitlines()]
    assert "Paris" in answers[0]["response"]
    assert result.status == "finished" and result.student_parameters < result.teacher_parameters
    assert result.teacher_ppl < 100 < result.untrained_ppl  # the real teacher knows English; a 6-layer cut does not
    assert math.isfinite(result.student_ppl) and result.student_ppl < result.untrained_ppl
    student = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "student", local_files_only=True)
    assert student.config.num_hidden_layers == 6 and student.config.vocab_size == 49152
