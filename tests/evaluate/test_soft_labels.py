"""The soft-label explorer on tiny random Llamas with the real tokenizer, and once on the real teacher."""

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from slm_studio.cli import main
from slm_studio.config import DistillConfig
from slm_studio.errors import UserError
from slm_studio.evaluate.explain_text import format_explanation
from slm_studio.evaluate.soft_labels import explain, visible
from slm_studio.models.loading import load_model
from tests.conftest import BUNDLED, make_tiny_llama

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def other_student(tiny_teacher, tokenizer, tmp_path_factory):
    """A different random Llama: sharper logits (larger weights), so its distribution differs clearly."""
    return make_tiny_llama(tmp_path_factory.mktemp("other"), tokenizer, layers=2, seed=7, initializer_range=0.2)


def test_probabilities_with_the_rest_sum_to_one_and_kl_matches_a_direct_computation(tiny_teacher, other_student):
    e = explain(PROMPT, other_student, teacher=str(tiny_teacher), top=5, chat=False)
    assert [v.temperature for v in e.views] == [1, 2, 4] and e.student == str(other_student)
    teacher, student = load_model(tiny_teacher), load_model(other_student)
    ids = torch.tensor([e_ids(tiny_teacher)])
    with torch.no_grad():
        t_logits, s_logits = teacher(ids).logits[0, -1], student(ids).logits[0, -1]
    for view in e.views:
        assert sum(r.teacher for r in view.rows) + view.teacher_rest == pytest.approx(1, abs=1e-5)
        assert sum(r.student for r in view.rows) + view.student_rest == pytest.approx(1, abs=1e-5)
        log_t = F.log_softmax(t_logits / view.temperature, -1)
        log_s = F.log_softmax(s_logits / view.temperature, -1)
        direct = float(F.kl_div(log_s, log_t, log_target=True, reduction="sum"))
        assert view.kl == pytest.approx(direct, rel=1e-4) and view.kl > 0
        assert view.kl_scaled == pytest.approx(direct * view.temperature ** 2, rel=1e-4)
        assert view.teacher_entropy == pytest.approx(float(-(log_t.exp() * log_t).sum()), rel=1e-4)
        top = t_logits.topk(5).indices.tolist()
        assert [r.token_id for r in view.rows][:5] == top


def e_ids(folder):
    from slm_studio.models.loading import load_tokenizer

    return load_tokenizer(folder)(PROMPT)["input_ids"]


def test_kl_is_zero_when_the_student_is_the_teacher_and_entropy_grows_with_t(tiny_teacher, other_student):
    same = explain(PROMPT, tiny_teacher, teacher=str(tiny_teacher), chat=False)
    assert all(v.kl == pytest.approx(0, abs=1e-6) for v in same.views)
    sharp = explain(PROMPT, teacher=str(other_student), chat=False)  # the sharper model, as a teacher alone
    entropies = [v.teacher_entropy for v in sharp.views]
    assert entropies[0] < entropies[1] < entropies[2] <= math.log(49152) + 1e-4
    assert sharp.student is None and all(v.kl is None and r.student is None for v in sharp.views for r in v.rows)


def test_hard_label_is_the_continuations_first_token_or_the_teachers_top1(tiny_teacher, tokenizer):
    given = explain(PROMPT, teacher=str(tiny_teacher), continuation=" Paris is lovely", top=3, chat=False)
    paris = tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    assert given.hard_label_id == paris and given.hard_label_source == "continuation"
    assert visible(given.hard_label_text) == "␣Paris"
    marked = [r for r in given.views[0].rows if r.hard_label]
    assert [r.token_id for r in marked] == [paris]  # appended when outside the teacher's top 3
    own = explain(PROMPT, teacher=str(tiny_teacher), top=3, chat=False)
    rows = own.views[0].rows
    assert own.hard_label_source == "teacher top-1" and rows[0].hard_label and rows[0].teacher == max(
        r.teacher for r in rows)
    with pytest.raises(UserError, match="merges with the end of the prompt"):
        explain("hello", teacher=str(tiny_teacher), continuation="world", chat=False)


def test_chat_template_is_the_default_and_raw_is_offered(tiny_teacher):
    chat = explain("Hi there", teacher=str(tiny_teacher), top=2)
    assert chat.chat_template and "<|im_start|>user\nHi there" in chat.context
    assert chat.context.endswith("<|im_start|>assistant\n")
    raw = explain("Hi there", teacher=str(tiny_teacher), top=2, chat=False)
    assert not raw.chat_template and raw.context == "Hi there"
    with pytest.raises(UserError, match="prompt is empty"):
        explain("  ", teacher=str(tiny_teacher))


def test_a_run_directory_names_its_teacher_and_temperature(tiny_teacher, other_student, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    DistillConfig(teacher=str(tiny_teacher), temperature=3.0).save(run / "run.toml")
    with pytest.raises(UserError, match="no student/ yet"):
        explain(PROMPT, run)
    shutil.copytree(other_student, run / "student")
    e = explain(PROMPT, run, chat=False, top=3)
    assert e.teacher == str(tiny_teacher) and e.train_temperature == 3.0 and e.student == str(run / "student")
    assert "this run distilled at T = 3" in format_explanation(e)


def test_a_student_with_another_vocabulary_is_refused(tiny_teacher, tokenizer, tmp_path):
    small = make_tiny_llama(tmp_path / "small", tokenizer, vocab_size=1000, layers=1)
    with pytest.raises(UserError, match="vocabulary mismatch: teacher vocab 49152, student 1000"):
        explain(PROMPT, small, teacher=str(tiny_teacher))


def test_cli_prints_bars_per_temperature_and_exits_2_on_bad_input(tiny_teacher, other_student, capsys, tmp_path):
    assert main(["explain", str(other_student), "--teacher", str(tiny_teacher), "--prompt", PROMPT, "--raw",
                 "--continuation", " Paris", "--top", "4"]) == 0
    out = capsys.readouterr().out
    for t in ("T = 1", "T = 2", "T = 4"):
        assert t in out
    assert out.count("KL(teacher_T || student_T)") == 3 and "◀ " in out
    assert "␣Paris" in out and "(all others)" in out and "nats" in out
    assert main(["explain", str(tmp_path / "missing"), "--prompt", PROMPT]) == 2
    assert "student not found" in capsys.readouterr().err


@pytest.mark.slow
def test_real_teacher_puts_paris_first_and_spreads_it_with_temperature():
    e = explain(PROMPT, teacher=BUNDLED, continuation=" Paris", chat=False, top=5)
    first = e.views[0].rows[0]
    assert first.text == " Paris" and first.hard_label and 0.5 < first.teacher < 0.95
    paris = [v.rows[0].teacher for v in e.views]
    assert paris[0] > paris[1] > paris[2]  # higher T hands Paris's mass to the others
    assert "London" in "".join(r.text for r in e.views[0].rows)  # the dark knowledge: another capital
