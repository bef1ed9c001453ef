"""The teacher's per-token probabilities of a student's reply, in llama.cpp, against direct computations."""

import json

import llama_cpp
import numpy as np
import pytest
import torch

from slm_studio.chat.scoring import (
    TeacherScorer,
    agreement_level,
    softmax_rows,
    vocabulary_digest,
)
from slm_studio.chat.session import ChatSession, ChatSettings
from slm_studio.errors import UserError
from slm_studio.export.gguf import export_gguf
from slm_studio.llama import open_llama
from slm_studio.models.loading import load_model
from tests.conftest import make_tiny_llama

REPLY = "Paris is the capital of France, and café means coffee."


@pytest.fixture(scope="module")
def sharp_teacher(tokenizer, tmp_path_factory):
    """A tiny random Llama with larger weights than the default, so its probabilities differ between tokens."""
    return make_tiny_llama(tmp_path_factory.mktemp("sharp"), tokenizer, layers=2, seed=3, initializer_range=0.2)


@pytest.fixture(scope="module")
def sharp_gguf(sharp_teacher, tmp_path_factory):
    return export_gguf(sharp_teacher, tmp_path_factory.mktemp("sharp-gguf"), float_type="F32").float_path


def test_scores_match_llama_cpp_token_by_token_and_torch(sharp_teacher, sharp_gguf, tokenizer):
    scorer = TeacherScorer(sharp_gguf)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Where is Paris?"}], tokenize=False,
                                         add_generation_prompt=True)
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    reply = tokenizer(REPLY, add_special_tokens=False)["input_ids"]
    scores = scorer.score(prompt, reply)
    assert [s.token_id for s in scores] == reply and "".join(s.text for s in scores) == REPLY

    plain = open_llama(sharp_gguf, n_ctx=256)  # one token at a time, read from llama.cpp's last-token logits
    plain.eval(prompt)
    sequential = []
    for token in reply:
        last = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(plain.ctx, -1), shape=(plain.n_vocab(),))
        sequential.append(softmax_rows(last[None])[0, token])
        plain.eval([token])
    plain.close()
    ours = np.array([s.teacher_prob for s in scores])
    assert np.allclose(ours, sequential, rtol=1e-3, atol=0)

    with torch.no_grad():
        logits = load_model(sharp_teacher)(torch.tensor([prompt + reply])).logits[0].double()
    probs = logits.softmax(-1)[len(prompt) - 1:-1]
    direct = probs[torch.arange(len(reply)), torch.tensor(reply)].numpy()
    assert np.allclose(ours, direct, rtol=1e-2, atol=0)
    assert [s.top_prob for s in scores] == pytest.approx(probs.max(-1).values.tolist(), rel=1e-2)
    assert ours.max() > 2 * ours.min()  # the probabilities differ between tokens: the comparison means something
    scorer.close()


def test_a_reply_from_a_student_session_is_scored_and_a_foreign_tokenizer_refused(sharp_gguf, tiny_teacher,
                                                                                   tmp_path, tokenizer):
    student = ChatSession(export_gguf(tiny_teacher, tmp_path / "student").float_path, n_ctx=512)
    reply = "".join(student.stream([{"role": "user", "content": "Hi"}], ChatSettings(max_tokens=12,
                                                                                      temperature=0.0)))
    scorer = TeacherScorer(sharp_gguf)
    scores = scorer.score_reply(student.llm, student.last_prompt_tokens, reply)
    assert scores and "".join(s.text for s in scores) == reply
    assert all(0 <= s.teacher_prob <= s.top_prob <= 1 for s in scores)

    foreign = tmp_path / "foreign"
    make_tiny_llama(foreign, tokenizer, layers=1)
    swap_two_tokens(foreign / "tokenizer.json", "Paris", "London")
    other = open_llama(export_gguf(foreign, tmp_path / "foreign-gguf").float_path)
    assert vocabulary_digest(other) != vocabulary_digest(student.llm)
    with pytest.raises(UserError, match="do not share a tokenizer"):
        scorer.score_reply(other, student.last_prompt_tokens, reply)
    other.close()
    student.close()
    scorer.close()


def swap_two_tokens(path, a, b):
    """Another tokenizer of the same size: two tokens trade their ids."""
    data = json.loads(path.read_text())
    vocab = data["model"]["vocab"]
    a, b = "Ġ" + a, "Ġ" + b
    vocab[a], vocab[b] = vocab[b], vocab[a]
    path.write_text(json.dumps(data))


def test_agreement_levels():
    assert [agreement_level(p) for p in (1.0, 0.5, 0.2, 0.05, 0.001, 0.0)] == [0, 0, 1, 2, 3, 3]
