"""Corpora as records: plain text, prompt + response, or chat messages; tokenized into fixed-length examples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from slm_studio.errors import UserError

BUILTIN_CORPUS = "python-docs"


def load_records(spec: str) -> list[dict]:
    """Records from 'python-docs' (CPython's own documentation prose) or a .txt / .jsonl file."""
    if spec == BUILTIN_CORPUS:
        from pydoc_data.topics import topics

        return [{"text": text} for _, text in sorted(topics.items())]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if "\x00" in raw:
        raise UserError(f"{path} looks binary (it contains NUL bytes), not a text corpus")
    if path.suffix.lower() == ".jsonl":
        records = [_parse_jsonl_line(path, n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    elif path.suffix.lower() == ".txt":
        records = [{"text": raw}] if raw.strip() else []
    else:
        raise UserError(f"{path}: unsupported data format {path.suffix!r}; use .txt or .jsonl")
    if not records:
        raise UserError(f"{path} is empty: no text to train on")
    return records


def _parse_jsonl_line(path: Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{number} is not valid JSON ({exc.msg})") from None
    if isinstance(record, dict):
        if isinstance(record.get("text"), str):
            return {"text": record["text"]}
        if isinstance(record.get("prompt"), str) and isinstance(record.get("response"), str):
            return {"messages": [{"role": "user", "content": record["prompt"]},
                                 {"role": "assistant", "content": record["response"]}]}
        if isinstance(record.get("messages"), list) and all(
                isinstance(m, dict) and {"role", "content"} <= m.keys() for m in record["messages"]):
            return {"messages": record["messages"]}
    raise UserError(f"{path}:{number}: expected an object with 'text', 'prompt'+'response' or 'messages'")


@dataclass
class TokenizedData:
    """Fixed-length examples. `target_mask[i, t]` is 1 where token t is a target the loss covers."""

    input_ids: torch.Tensor  # [n, seq_len] long
    attention_mask: torch.Tensor  # [n, seq_len] long
    target_mask: torch.Tensor  # [n, seq_len] long

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def subset(self, index: torch.Tensor) -> "TokenizedData":
        return TokenizedData(self.input_ids[index], self.attention_mask[index], self.target_mask[index])

    @property
    def target_tokens(self) -> int:
        return int(self.target_mask[:, 1:].sum())


def tokenize(records: list[dict], tokenizer, seq_len: int) -> TokenizedData:
    """Text records are joined with EOS and cut into full blocks; chat records become one padded example each,
    with targets on the assistant's tokens only."""
    texts = [r["text"] for r in records if "text" in r]
    stream: list[int] = []
    # one batched call: faster, and the Rust tokenizer releases the GIL for it (the app's UI thread stays smooth)
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []:
        stream += ids + [tokenizer.eos_token_id]
    rows = [_chat_row(r["messages"], tokenizer, seq_len) for r in records if "messages" in r]
    rows += [(stream[i:i + seq_len], [1] * seq_len) for i in range(0, len(stream) - seq_len + 1, seq_len)]
    rows = [r for r in rows if sum(r[1][1:]) > 0]
    if not rows:
        raise UserError(f"the corpus yields no training example of {seq_len} tokens; add text or lower seq_len")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(rows), seq_len), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), seq_len), dtype=torch.long)
    targets = torch.zeros((len(rows), seq_len), dtype=torch.long)
    for i, (tokens, mask) in enumerate(rows):
        ids[i, :len(tokens)] = torch.tensor(tokens)
        attention[i, :len(tokens)] = 1
        targets[i, :len(mask)] = torch.tensor(mask)
    return TokenizedData(ids, attention, targets)


def _chat_row(messages: list[dict], tokenizer, seq_len: int) -> tuple[list[int], list[int]]:
    tokens: list[int] = []
    mask: list[int] = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            prefix = _render(tokenizer, messages[:i], add_generation_prompt=True)
            new = _render(tokenizer, messages[:i + 1])[len(tokens):]
            head = len(prefix) - len(tokens)
            tokens += new
            mask += [0] * head + [1] * (len(new) - head)
        else:
            new = _render(tokenizer, messages[:i + 1])[len(tokens):]
            tokens += new
            mask += [0] * len(new)
    return tokens[:seq_len], mask[:seq_len]


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def split_holdout(data: TokenizedData, fraction: float, seed: int) -> tuple[TokenizedData, TokenizedData]:
    """(train, held-out): a seeded shuffle, at least one example held out and one kept."""
    if len(data) < 2:
        raise UserError("the corpus yields a single example; add text or lower seq_len to hold some out")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_held = min(len(data) - 1, max(1, round(len(data) * fraction)))
    return data.subset(order[n_held:]), data.subset(order[:n_held])


def batch_indices(n: int, position: int, batch_size: int, seed: int) -> torch.Tensor:
    """The examples of the batch that starts at sample `position` of an endless seeded stream of epochs.
    Stateless, so a resumed run needs only `position` to continue exactly where it stopped."""
    out = []
    while len(out) < batch_size:
        epoch, offset = divmod(position, n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        take = order[offset:offset + batch_size - len(out)].tolist()
        out += take
        position += len(take)
    return torch.tensor(out)
