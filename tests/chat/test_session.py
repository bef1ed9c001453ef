"""Chat over llama.cpp with exported and bundled models."""

import threading

import pytest

from slm_studio.chat.session import ChatSession, ChatSettings, resolve_chat_model
from slm_studio.errors import UserError
from slm_studio.export.gguf import export_gguf
from tests.conftest import BUNDLED

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_gguf(tiny_teacher, tmp_path_factory):
    return export_gguf(tiny_teacher, tmp_path_factory.mktemp("chat-gguf")).float_path


def test_an_exported_model_streams_a_reply_with_stats(tiny_gguf):
    session = ChatSession(tiny_gguf, n_ctx=512)
    pieces = list(session.stream(QUESTION, ChatSettings(max_tokens=12, temperature=0.0)))
    stats = session.last_stats
    assert pieces and "".join(pieces)
    assert 0 < stats.generated_tokens <= 12 and stats.generation_tokens_per_s > 0
    assert stats.prompt_tokens > 10 and stats.time_to_first_token_s > 0
    session.close()


@pytest.mark.slow
def test_teacher_and_student_answer_side_by_side_from_two_threads(tiny_gguf):
    teacher = ChatSession(resolve_chat_model(BUNDLED), n_ctx=512)
    student = ChatSession(tiny_gguf, n_ctx=512)
    replies = {}

    def answer(name, session):
        replies[name] = "".join(session.stream(QUESTION, ChatSettings(max_tokens=24, temperature=0.0, seed=1)))

    threads = [threading.Thread(target=answer, args=item) for item in (("teacher", teacher), ("student", student))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert set(replies) == {"teacher", "student"} and replies["teacher"].strip()
    assert "capital" in replies["teacher"] or "Paris" in replies["teacher"]
    assert teacher.last_stats.generated_tokens > 0 and student.last_stats.generated_tokens > 0


def test_chat_model_resolution(tmp_path):
    assert resolve_chat_model(BUNDLED).suffix == ".gguf"
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError, match="holds no exported GGUF"):
        resolve_chat_model(str(tmp_path / "run"))


def test_a_too_long_conversation_is_refused_plainly(tiny_gguf):
    session = ChatSession(tiny_gguf, n_ctx=64)
    with pytest.raises(UserError, match="exceeds the context"):
        list(session.stream([{"role": "user", "content": "word " * 100}], ChatSettings(max_tokens=8)))
    session.close()
