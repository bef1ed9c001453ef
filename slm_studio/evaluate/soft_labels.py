"""The soft-label explorer: what a teacher's next-token distribution holds that a one-hot label does not.

    slm-studio explain runs/quick --prompt "What is the capital of France?"
    slm-studio explain --prompt "The capital of France is" --raw --continuation " Paris"

For one context, `explain()` gives the teacher's distribution at temperatures 1, 2 and 4 (top tokens plus the mass
of everything else), the hard label plain fine-tuning would use, the student's distribution when there is a
student, the KL divergence the trainer minimises at each temperature and the teacher's entropy.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from slm_studio.distill.losses import forward_kl
from slm_studio.errors import Cancelled, UserError
from slm_studio.events import CancelToken, Event, EventHandler, ignore_event

TEMPERATURES = (1.0, 2.0, 4.0)
VISIBLE_WHITESPACE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def visible(text: str) -> str:
    """A token's text with its whitespace drawn ('␣Paris'), so ' Paris' and 'Paris' look different."""
    return text.translate(VISIBLE_WHITESPACE) or "∅"


@dataclass
class TokenRow:
    token_id: int
    text: str
    teacher: float  # probability at this row's temperature
    student: float | None = None
    hard_label: bool = False


@dataclass
class TemperatureView:
    temperature: float
    rows: list[TokenRow]
    teacher_rest: float  # probability of every token not in `rows`
    teacher_entropy: float  # nats
    student_rest: float | None = None
    kl: float | None = None  # KL(teacher_T || student_T) over the full vocabulary, nats, unscaled
    kl_scaled: float | None = None  # T^2 * kl: the soft loss the trainer minimises (forward_kl)

    @property
    def effective_choices(self) -> float:
        """exp(entropy): as spread out as a uniform choice among this many tokens."""
        return math.exp(self.teacher_entropy)


@dataclass
class Explanation:
    context: str  # exactly the text the models saw
    chat_template: bool
    teacher: str
    student: str | None
    hard_label_id: int
    hard_label_text: str
    hard_label_source: str  # "continuation" or "teacher top-1"
    views: list[TemperatureView] = field(default_factory=list)
    train_temperature: float | None = None  # the run's distillation temperature, when a run was given


@dataclass(frozen=True)
class ModelSpecs:
    teacher: str
    student_folder: Path | None
    train_temperature: float | None = None


def model_specs(student: str | Path | None = None, teacher: str | None = None) -> ModelSpecs:
    """Which teacher and student to compare: a run directory names its teacher in run.toml and holds student/;
    an HF folder is a student; nothing means the teacher alone. `teacher` overrides the run's."""
    from slm_studio.config import DEFAULT_TEACHER, DistillConfig

    if student is None or str(student) == "":
        return ModelSpecs(teacher or DEFAULT_TEACHER, None)
    path = Path(student).expanduser()
    if (path / "run.toml").is_file():
        config = DistillConfig.load(path / "run.toml")
        if not (path / "student" / "config.json").is_file():
            raise UserError(f"{path} has no student/ yet: the run has not finished (or was cancelled)")
        return ModelSpecs(teacher or config.teacher, path / "student", config.temperature)
    if (path / "config.json").is_file():
        return ModelSpecs(teacher or DEFAULT_TEACHER, path)
    if path.exists():
        raise UserError(f"{path} is neither a run directory (run.toml) nor a Hugging Face model folder")
    raise UserError(f"student not found: {path}")


@functools.lru_cache(maxsize=3)
def _cached_model(folder: str, stamp: int):
    """Loaded once per folder and weights version, so a second Explain click answers in a fraction of a second."""
    from slm_studio.models.loading import load_model, load_tokenizer

    model = load_model(Path(folder))
    model.eval()
    return model, load_tokenizer(Path(folder))


def _weights_stamp(folder: Path) -> int:
    return max((f.stat().st_mtime_ns for f in folder.glob("*.safetensors")), default=0)


def load_pair(specs: ModelSpecs, on_event: EventHandler = ignore_event):
    """((teacher, tokenizer), (student, tokenizer) or None), checked to share a vocabulary."""
    from slm_studio.models.loading import hf_folder
    from slm_studio.models.sources import resolve

    on_event(Event("load", message=f"loading teacher {specs.teacher}"))
    folder = hf_folder(resolve(specs.teacher), on_event)
    teacher = _cached_model(str(folder), _weights_stamp(folder))
    if specs.student_folder is None:
        return teacher, None
    on_event(Event("load", message=f"loading student {specs.student_folder}"))
    student = _cached_model(str(specs.student_folder), _weights_stamp(specs.student_folder))
    _check_once(teacher, student)
    return teacher, student


_COMPATIBLE: set[tuple[int, int]] = set()


def _check_once(teacher, student) -> None:
    """The vocabulary check compares two 49k-entry dicts (a GIL-holding pause): once per pair of loaded models."""
    from slm_studio.models.student import check_compatible

    key = (id(teacher), id(student))
    if key not in _COMPATIBLE:
        check_compatible(teacher[0], teacher[1], student[0], student[1])
        _COMPATIBLE.add(key)


def build_context(tokenizer, prompt: str, chat: bool | None = None) -> tuple[str, bool]:
    """The text the models continue: the prompt as a user turn in the chat template (the default when the
    tokenizer has one), or the prompt as it is."""
    if not prompt.strip():
        raise UserError("the prompt is empty")
    use_chat = bool(tokenizer.chat_template) if chat is None else chat
    if use_chat and not tokenizer.chat_template:
        raise UserError("this teacher has no chat template; use the raw prompt (--raw)")
    if not use_chat:
        return prompt, False
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True), True


def context_ids(tokenizer, context: str, chat: bool, continuation: str = "") -> tuple[list[int], int | None]:
    """(token ids of the context, the first token of the continuation or None). Context and continuation are
    tokenized together, as plain fine-tuning would see the text."""
    special = not chat  # the chat template already wrote its special tokens
    ids = tokenizer(context, add_special_tokens=special)["input_ids"]
    if not ids:
        raise UserError("the prompt has no tokens")
    if not continuation:
        return ids, None
    full = tokenizer(context + continuation, add_special_tokens=special)["input_ids"]
    if full[:len(ids)] != ids or len(full) == len(ids):
        raise UserError(f"the continuation {continuation!r} merges with the end of the prompt into one token; "
                        "start it where a new token starts (for example with a space: ' Paris')")
    return ids, full[len(ids)]


@torch.inference_mode()
def next_token_logits(model, ids: list[int]) -> torch.Tensor:
    """The float32 logits over the whole vocabulary for the token after `ids`."""
    return model(torch.tensor([ids], device=model.device)).logits[0, -1].float().cpu()


def temperature_view(teacher_logits: torch.Tensor, student_logits: torch.Tensor | None, temperature: float,
                     shown: list[int], texts: dict[int, str], hard_label: int) -> TemperatureView:
    """Both distributions at one temperature: the shown tokens' probabilities, the rest, KL and entropy."""
    log_t = F.log_softmax(teacher_logits / temperature, dim=-1)
    p_t = log_t.exp()
    index = torch.tensor(shown)
    entropy = float(-(p_t * log_t).sum())
    view = TemperatureView(temperature, [], float(1 - p_t[index].sum()), entropy)
    p_s = None
    if student_logits is not None:
        log_s = F.log_softmax(student_logits / temperature, dim=-1)
        p_s = log_s.exp()
        view.student_rest = float(1 - p_s[index].sum())
        view.kl = max(float(forward_kl(log_t, log_s)), 0.0)  # rounding can dip a hair below zero
        view.kl_scaled = view.kl * temperature ** 2
    for token in shown:
        view.rows.append(TokenRow(token, texts[token], float(p_t[token]),
                                  None if p_s is None else float(p_s[token]), token == hard_label))
    return view


def shown_tokens(teacher_logits: torch.Tensor, student_logits: torch.Tensor | None, top: int,
                 hard_label: int) -> list[int]:
    """The teacher's top tokens (the same set at every temperature), then the hard label and the student's
    top-1 when they fall outside it."""
    shown = teacher_logits.topk(min(top, teacher_logits.numel())).indices.tolist()
    extra = [hard_label] + ([int(student_logits.argmax())] if student_logits is not None else [])
    for token in extra:
        if token not in shown:
            shown.append(token)
    return shown


def explain(prompt: str, student: str | Path | None = None, teacher: str | None = None, continuation: str = "",
            top: int = 10, chat: bool | None = None, temperatures: tuple[float, ...] = TEMPERATURES,
            on_event: EventHandler = ignore_event, cancel: CancelToken | None = None) -> Explanation:
    """The teacher's (and student's) next-token distributions after `prompt`, at each temperature."""
    if top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    specs = model_specs(student, teacher)
    (t_model, tokenizer), student_pair = load_pair(specs, on_event)
    if cancel is not None and cancel.cancelled:
        raise Cancelled("explain cancelled")
    context, used_chat = build_context(tokenizer, prompt, chat)
    ids, label = context_ids(tokenizer, context, used_chat, continuation)
    on_event(Event("explain", message="running the models on the prompt"))
    teacher_logits = next_token_logits(t_model, ids)
    student_logits = next_token_logits(student_pair[0], ids) if student_pair else None
    source = "continuation" if label is not None else "teacher top-1"
    label = int(teacher_logits.argmax()) if label is None else label
    shown = shown_tokens(teacher_logits, student_logits, top, label)
    texts = {token: tokenizer.decode([token]) for token in shown}
    return Explanation(
        context=context, chat_template=used_chat, teacher=specs.teacher,
        student=None if specs.student_folder is None else str(specs.student_folder),
        hard_label_id=label, hard_label_text=texts[label], hard_label_source=source,
        views=[temperature_view(teacher_logits, student_logits, t, shown, texts, label) for t in temperatures],
        train_temperature=specs.train_temperature)
