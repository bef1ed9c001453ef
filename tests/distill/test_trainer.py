import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from slm_studio.config import DistillConfig
from slm_studio.distill.checkpoint import list_checkpoints
from slm_studio.distill.trainer import distill, lr_factor
from slm_studio.errors import UserError
from slm_studio.events import CancelToken
from tests.conftest import make_tiny_llama


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_leaves_a_complete_run_directory(tmp_path, tiny_config):
    events = []
    result = distill(tiny_config, tmp_path / "run", on_event=events.append)
    run = tmp_path / "run"
    assert result.status == "finished" and result.steps_done == 6
    assert DistillConfig.load(run / "run.toml") == tiny_config
    rows = _metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"step", "loss", "kl", "ce", "lr", "tokens_per_s", "eta_s"} <= rows[0].keys()
    assert "eval_ppl" in rows[2] and "eval_ppl" in rows[5]
    train_events = [e for e in events if e.stage == "train" and e.metrics]
    assert len(train_events) == 6 and train_events[-1].step == train_events[-1].total == 6
    assert list_checkpoints(run)
    student = AutoModelForCausalLM.from_pretrained(run / "student", local_files_only=True)
    assert student.config.num_hidden_layers == 2 and (run / "student" / "tokenizer.json").exists()
    assert math.isfinite(result.student_ppl) and result.student_parameters < result.teacher_parameters


def test_distillation_pulls_the_student_towards_the_teacher(tmp_path, tiny_config, tokenizer):
    # larger random weights give the teacher peaked distributions that a 2-layer student first gets wrong
    teacher = make_tiny_llama(tmp_path / "peaked", tokenizer, initializer_range=0.2)
    tiny_config.teacher, tiny_config.steps, tiny_config.alpha, tiny_config.lr = str(teacher), 30, 1.0, 1e-2
    distill(tiny_config, tmp_path / "run")
    kl = [r["kl"] for r in _metrics(tmp_path / "run")]
    assert sum(kl[-5:]) < 0.9 * sum(kl[:5])  # measured: 2.73 -> 2.28 (seeded, deterministic)


def test_resumed_run_matches_an_uninterrupted_run_step_for_step(tmp_path, tiny_config):
    distill(tiny_config, tmp_path / "straight")

    cancel = CancelToken()

    def stop_after_step_3(event):
        if event.stage == "train" and event.step == 3 and event.metrics:
            cancel.cancel()

    first = distill(tiny_config, tmp_path / "resumed", on_event=stop_after_step_3, cancel=cancel)
    assert first.status == "cancelled" and first.steps_done == 3
    assert not (tmp_path / "resumed" / "student").exists()
    second = distill(DistillConfig.load(tmp_path / "resumed" / "run.toml"), tmp_path / "resumed", resume=True)
    assert second.status == "finished"

    straight, resumed = _metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(straight, resumed):
        for key in ("loss", "kl", "ce", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["step"], key)
    w1 = load_file(tmp_path / "straight" / "student" / "model.safetensors")
    w2 = load_file(tmp_path / "resumed" / "student" / "model.safetensors")
    for name in w1:
        torch.testing.assert_close(w1[name], w2[name], rtol=1e-5, atol=1e-6)


def test_resume_without_checkpoint_and_occupied_out_dir_are_refused(tmp_path, tiny_config):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("precious")
    with pytest.raises(UserError, match="already holds files"):
        distill(tiny_config, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "precious"
    with pytest.raises(UserError, match="no complete checkpoint"):
        distill(tiny_config, tmp_path / "busy", resume=True)


def test_failed_start_leaves_no_run_directory(tmp_path, tiny_config, tokenizer):
    tiny_config.student_model = str(make_tiny_llama(tmp_path / "small-vocab", tokenizer, vocab_size=32000))
    with pytest.raises(UserError, match="teacher vocab 49152, student 32000"):
        distill(tiny_config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_learning_rate_warms_up_then_decays_to_the_floor():
    config = DistillConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(config, s) for s in range(101)]
    assert factors[0] < factors[5] < factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[100] == pytest.approx(0.1)


def test_gradient_accumulation_and_jsd_run(tmp_path, tiny_config):
    tiny_config.grad_accum, tiny_config.loss, tiny_config.steps = 2, "jsd", 2
    result = distill(tiny_config, tmp_path / "run")
    assert result.status == "finished" and all(math.isfinite(r["loss"]) for r in _metrics(tmp_path / "run"))


def test_cached_teacher_top_k_is_computed_once_and_reused_on_resume(tmp_path, tiny_config):
    tiny_config.teacher_topk, tiny_config.steps = 16, 4
    cancel = CancelToken()
    first = distill(tiny_config, tmp_path / "run", cancel=cancel,
                    on_event=lambda e: e.stage == "train" and e.step == 2 and cancel.cancel())
    cache = tmp_path / "run" / "teacher_topk.safetensors"
    assert first.status == "cancelled" and cache.exists()
    written = cache.stat().st_mtime_ns
    stages = []
    result = distill(tiny_config, tmp_path / "run", resume=True, on_event=lambda e: stages.append(e.stage))
    assert result.status == "finished" and "cache" not in stages and cache.stat().st_mtime_ns == written
    saved = load_file(cache)
    assert saved["log_probs"].shape[-1] == 16 and saved["index"].dtype == torch.int32
    assert saved["tail_index"].shape[-1] == tiny_config.teacher_tail_samples
    assert not (saved["tail_index"].unsqueeze(-1) == saved["index"].unsqueeze(-2)).any()  # drawn outside the top k


def test_a_damaged_teacher_cache_is_made_again_on_resume(tmp_path, tiny_config):
    tiny_config.teacher_topk, tiny_config.steps, tiny_config.checkpoint_every = 8, 2, 1
    distill(tiny_config, tmp_path / "run")
    cache = tmp_path / "run" / "teacher_topk.safetensors"
    good = {key: t.clone() for key, t in load_file(cache).items()}  # copies: the file is cut below
    cache.write_bytes(cache.read_bytes()[:1000])  # cut short, as a disk error might leave it
    tiny_config.steps = 3
    stages = []
    result = distill(tiny_config, tmp_path / "run", resume=True, on_event=lambda e: stages.append(e.stage))
    assert result.status == "finished" and "cache" in stages
    remade = load_file(cache)
    for key in good:  # the same seeded draws
        torch.testing.assert_close(remade[key], good[key], msg=key)


def test_activation_checkpointing_changes_memory_not_the_numbers(tmp_path, tiny_config):
    tiny_config.steps = 3
    runs = {}
    for checkpointing in (False, True):
        tiny_config.activation_checkpointing = checkpointing
        distill(tiny_config, tmp_path / str(checkpointing))
        runs[checkpointing] = _metrics(tmp_path / str(checkpointing))
    for plain, recomputed in zip(runs[False], runs[True]):
        for key in ("loss", "kl", "ce", "grad_norm"):
            assert recomputed[key] == pytest.approx(plain[key], rel=1e-5)


def test_fp32_and_bf16_optimizer_moments_train_alike(tmp_path, tiny_config):
    tiny_config.steps = 6
    final = {}
    for state in ("fp32", "bf16"):
        tiny_config.optimizer_state = state
        distill(tiny_config, tmp_path / state)
        final[state] = _metrics(tmp_path / state)
    for fp32, bf16 in zip(final["fp32"], final["bf16"]):  # the same run, step by step, to rounding
        assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.02)


def test_bf16_autocast_trains(tmp_path, tiny_config):
    tiny_config.precision, tiny_config.steps = "bf16", 3
    result = distill(tiny_config, tmp_path / "run")
    assert result.status == "finished" and all(math.isfinite(r["loss"]) for r in _metrics(tmp_path / "run"))


def test_frozen_embeddings_keep_the_teachers_values_and_the_rest_trains(tmp_path, tiny_config, tiny_teacher):
    tiny_config.freeze_embeddings = True
    distill(tiny_config, tmp_path / "run")
    teacher = load_file(tiny_teacher / "model.safetensors")
    student = load_file(tmp_path / "run" / "student" / "model.safetensors")
    assert torch.equal(student["model.embed_tokens.weight"], teacher["model.embed_tokens.weight"])
    assert not torch.equal(student["model.layers.0.mlp.up_proj.weight"], teacher["model.layers.0.mlp.up_proj.weight"])
