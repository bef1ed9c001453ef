import json

import pytest
import torch

from slm_studio.data.corpus import batch_indices, load_records, split_holdout, tokenize
from slm_studio.data.generate import generate_answers, load_prompts
from slm_studio.errors import UserError
from slm_studio.models.loading import load_model


def test_builtin_corpus_needs_no_download(tokenizer):
    records = load_records("python-docs")
    assert len(records) > 50 and sum(len(r["text"]) for r in records) > 100_000
    data = tokenize(records[:20], tokenizer, 64)
    assert data.input_ids.shape[1] == 64 and bool(data.attention_mask.all()) and bool(data.target_mask.all())


def test_text_and_jsonl_formats(tmp_path, tokenizer):
    (tmp_path / "a.txt").write_text("Distillation moves knowledge from a teacher to a student. " * 20)
    lines = [{"text": "plain text " * 30}, {"prompt": "Say hi", "response": "Hi there!"},
             {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "Four."}]}]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert load_records(str(tmp_path / "a.txt"))[0]["text"].startswith("Distillation")
    records = load_records(str(tmp_path / "b.jsonl"))
    assert [list(r) for r in records] == [["text"], ["messages"], ["messages"]]
    assert tokenize(records, tokenizer, 32).input_ids.shape[1] == 32


def test_chat_loss_covers_the_response_tokens_only(tokenizer):
    messages = [{"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "The capital of France is Paris."}]
    data = tokenize([{"messages": messages}], tokenizer, 128)
    ids, mask = data.input_ids[0], data.target_mask[0].bool()
    targets = tokenizer.decode(ids[mask])
    assert targets.startswith("The capital of France is Paris.") and "What is" not in targets
    assert int(data.attention_mask[0].sum()) < 128  # padded, and padding is never a target
    assert not bool(mask[data.attention_mask[0] == 0].any())


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\x00\x01\x02binary\x00", "looks binary"),
    (b"caf\xe9 au lait", "not UTF-8"),
])
def test_bad_text_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_records(str(path))


def test_bad_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{"oops": 1}\n')
    with pytest.raises(UserError, match="bad.jsonl:2"):
        load_records(str(path))
    with pytest.raises(UserError, match="not found"):
        load_records(str(tmp_path / "missing.txt"))


def test_too_little_text_for_one_example(tokenizer):
    with pytest.raises(UserError, match="no training example"):
        tokenize([{"text": "short"}], tokenizer, 128)


def test_holdout_split_is_disjoint_and_seeded(tokenizer):
    data = tokenize(load_records("python-docs")[:30], tokenizer, 32)
    train, held = split_holdout(data, 0.1, seed=3)
    assert len(train) + len(held) == len(data) and len(held) == round(len(data) * 0.1)
    again, _ = split_holdout(data, 0.1, seed=3)
    assert torch.equal(train.input_ids, again.input_ids)


def test_batch_stream_covers_each_epoch_and_resumes_from_a_position():
    first_epoch = torch.cat([batch_indices(10, p, 2, seed=0) for p in range(0, 10, 2)])
    assert sorted(first_epoch.tolist()) == list(range(10))
    assert torch.equal(batch_indices(10, 8, 4, seed=0)[:2], first_epoch[8:])  # a batch may span two epochs


def test_teacher_answers_are_saved_and_reused(tmp_path, tiny_teacher, tokenizer):
    prompts = load_prompts("default")[:3]
    out = tmp_path / "answers.jsonl"
    records = generate_answers(load_model(tiny_teacher), tokenizer, prompts, out, max_new_tokens=4, batch_size=2)
    assert [r["prompt"] for r in records] == prompts
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    assert generate_answers(None, tokenizer, prompts, out) == records  # reused without a model


def test_default_prompt_set_ships():
    assert len(load_prompts("default")) >= 50
