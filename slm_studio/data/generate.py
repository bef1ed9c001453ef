"""Teacher data generation: the teacher answers a prompt set with its own chat template."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from slm_studio.errors import Cancelled, UserError
from slm_studio.events import CancelToken, Event, EventHandler, ignore_event
from slm_studio.fileio import write_text
from slm_studio.resources import resource


def load_prompts(spec: str) -> list[str]:
    """'default' (resources/prompts.txt), a .txt file with one prompt a line, or a .jsonl with 'prompt'."""
    path = resource("prompts.txt") if spec == "default" else Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"prompt file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    if path.suffix.lower() == ".jsonl":
        try:
            prompts = [json.loads(line)["prompt"] for line in text.splitlines() if line.strip()]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{path}: every line must be a JSON object with a 'prompt'") from None
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise UserError(f"{path} holds no prompts")
    return prompts


def generate_answers(model, tokenizer, prompts: list[str], out: Path, max_new_tokens: int = 96,
                     temperature: float = 0.0, batch_size: int = 8, seed: int = 0,
                     on_event: EventHandler = ignore_event, cancel: CancelToken | None = None) -> list[dict]:
    """Answer every prompt (batched) and save [{'prompt', 'response'}] as JSONL at `out`.
    An existing file for the same prompts is reused, so a resumed run does not generate again."""
    if out.exists():
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
        if [r["prompt"] for r in records] == prompts:
            return records
    torch.manual_seed(seed)
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    records = []
    for start in range(0, len(prompts), batch_size):
        if cancel is not None and cancel.cancelled:
            raise Cancelled("teacher generation cancelled")
        batch = prompts[start:start + batch_size]
        records += [{"prompt": p, "response": r} for p, r in zip(batch, _answer(
            model, tokenizer, batch, max_new_tokens, temperature))]
        on_event(Event("generate", step=len(records), total=len(prompts),
                       message=f"teacher answered {len(records)}/{len(prompts)} prompts"))
    write_text(out, "".join(json.dumps(r) + "\n" for r in records))
    return records


@torch.inference_mode()
def _answer(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float) -> list[str]:
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    sampling = dict(do_sample=True, temperature=temperature, top_p=0.95) if temperature > 0 else dict(
        do_sample=False, temperature=None, top_p=None, top_k=None)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
                         or tokenizer.eos_token_id, **sampling)
    return [s.strip() for s in tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
