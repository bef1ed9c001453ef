"""Drive the Distill page like a user: configure, start, watch the plots, cancel, resume."""

import json

from PySide6.QtCore import Qt

from slm_studio.config import DistillConfig
from tests.app.conftest import StallProbe


def _tiny(tiny_teacher, **overrides) -> DistillConfig:
    values = dict(teacher=str(tiny_teacher), student_layers=2, steps=6, batch_size=2, seq_len=32, warmup_steps=2,
                  eval_every=3, eval_batches=2, checkpoint_every=3, lr=1e-3)
    return DistillConfig(**{**values, **overrides})


def test_a_whole_tiny_run_through_the_ui_stays_responsive(qtbot, window, tiny_teacher):
    page = window.distill_page
    page.form.set_config(_tiny(tiny_teacher, steps=24))
    assert page.start_button.isEnabled()
    with StallProbe() as whole_run, qtbot.waitSignal(page.run_finished, timeout=180_000) as finished:
        qtbot.mouseClick(page.start_button, Qt.LeftButton)
        assert not page.start_button.isEnabled() and page.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: page.loss_plot.point_count("loss") > 0, timeout=120_000)
        with StallProbe() as training:
            qtbot.waitUntil(lambda: not page.running, timeout=120_000)
    result = finished.args[0]
    assert result.status == "finished" and (result.run_dir / "student" / "config.json").exists()
    qtbot.waitUntil(lambda: page.loss_plot.point_count("kl") == 24)
    assert page.loss_plot.point_count("ce") == 24 and page.eval_plot.point_count("student") == 8
    assert page.progress.value() == 24 and "distilled student" in page.status.text()
    print(f"longest event-loop stall: {training.longest_ms} ms while training, "
          f"{whole_run.longest_ms} ms including model loading")
    assert training.responsive()


def test_cancel_keeps_a_checkpoint_and_resume_finishes(qtbot, window, tiny_teacher):
    page = window.distill_page
    page.form.set_config(_tiny(tiny_teacher, steps=200, checkpoint_every=100))
    page.start_button.click()
    qtbot.waitUntil(lambda: page.progress.value() >= 2, timeout=120_000)
    page.cancel_button.click()
    qtbot.waitUntil(lambda: not page.running, timeout=60_000)
    assert "Cancelled" in page.status.text() and page.resume_button.isEnabled()
    run = page.run_dir
    stopped_at = len((run / "metrics.jsonl").read_text().splitlines())
    config = DistillConfig.load(run / "run.toml")
    config.steps = stopped_at + 2  # finish quickly: resume the same run with two more steps
    config.save(run / "run.toml")
    with qtbot.waitSignal(page.run_finished, timeout=120_000):
        page.resume_button.click()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, stopped_at + 3))


def test_invalid_values_are_marked_and_block_start(window):
    form = window.distill_page.form
    form.temperature.setValue(0.0)
    assert "temperature" in form.problems()
    assert "border" in form.temperature.styleSheet() and "temperature must be > 0" in form.problem_label.text()
    assert not window.distill_page.start_button.isEnabled()
    form.temperature.setValue(2.0)
    assert window.distill_page.start_button.isEnabled()


def test_student_size_is_estimated_live(window):
    form = window.distill_page.form
    form.student_layers.setValue(15)
    assert "81.4M parameters" in form.student_info.text()
    form.student_layers.setValue(10)
    assert "M parameters" in form.student_info.text() and "81.4M" not in form.student_info.text()


def test_config_save_and_load_round_trip(window, tmp_path, tiny_teacher):
    config = _tiny(tiny_teacher, temperature=3.5, alpha=0.2, loss="reverse_kl", data=["python-docs"],
                   attention_weight=0.5, hidden_weight=1.5, optimizer_state="fp32", activation_checkpointing=False)
    window.distill_page.form.set_config(config)
    window.save_config(str(tmp_path / "form.toml"))
    assert DistillConfig.load(tmp_path / "form.toml") == config  # the same TOML the CLI reads
    window.distill_page.form.set_config(DistillConfig())
    window.open_config(str(tmp_path / "form.toml"))
    assert window.distill_page.form.config() == config


def test_a_bad_teacher_file_ends_in_an_error_dialog(qtbot, window, tmp_path, tiny_teacher):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 100)
    page = window.distill_page
    page.form.set_config(_tiny(tiny_teacher, teacher=str(bad)))
    page.start_button.click()
    qtbot.waitUntil(lambda: getattr(window, "error_dialog", None) is not None and window.error_dialog.isVisible(),
                    timeout=60_000)
    assert "not a readable GGUF" in window.error_dialog.text()
    assert not page.running


def test_removing_every_corpus_without_prompts_blocks_start(window):
    form = window.distill_page.form
    form.teacher_prompts.setCurrentText("None")
    form.data.selectAll()
    [b for b in form.findChildren(type(window.distill_page.start_button)) if b.text() == "Remove"][0].click()
    assert form.data.count() == 0 and "data" in form.problems()
    assert not window.distill_page.start_button.isEnabled()


def test_speed_and_memory_settings_reach_the_config_and_conflicts_are_marked(window, tiny_teacher):
    form = window.distill_page.form
    form.set_config(_tiny(tiny_teacher))
    assert not form.memory.tail.isEnabled()  # tail samples only with a cached teacher
    form.memory.topk.setValue(64)
    form.memory.tail.setValue(128)
    form.memory.moments.setCurrentIndex(form.memory.moments.findData("fp32"))
    config = form.config()
    assert (config.teacher_topk, config.teacher_tail_samples, config.optimizer_state) == (64, 128, "fp32")
    assert form.memory.tail.isEnabled()
    form.attention_weight.setValue(1.0)  # needs the live teacher
    assert "attention_weight" in form.problems() and not window.distill_page.start_button.isEnabled()
    form.memory.topk.setValue(0)
    assert "attention_weight" not in form.problems()
