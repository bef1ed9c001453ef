"""The distillation loop: `distill(config, run_dir)` trains a student against its teacher.

    slm-studio distill --preset quick --out runs/quick
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from slm_studio.config import DistillConfig
from slm_studio.data.corpus import TokenizedData, batch_indices, load_records, split_holdout, tokenize
from slm_studio.data.generate import generate_answers, load_prompts
from slm_studio.distill import distributed
from slm_studio.distill.checkpoint import (TrainerState, latest_checkpoint, load_trainer_state,
                                           save_checkpoint)
from slm_studio.distill.chunked import TeacherTopK, chunked_distillation_loss, teacher_top_k
from slm_studio.distill.optim import BF16StateAdamW
from slm_studio.distill.transfer import (check_transferable, layer_pairs, run_with_internals, transfer_losses,
                                        use_eager_attention)
from slm_studio.errors import Cancelled, UserError
from slm_studio.evaluate.perplexity import perplexity
from slm_studio.events import CancelToken, Event, EventHandler, ignore_event
from slm_studio.fileio import append_jsonl, atomic_dir, atomic_path, read_jsonl, write_json, write_text
from slm_studio.models import loading, sources
from slm_studio.models.student import StudentPlan, check_compatible, derive_student, parameter_count, plan_layers
from slm_studio.prune import hold_masks, prepare_pruning


@dataclass
class DistillResult:
    run_dir: Path
    status: str  # "finished" or "cancelled"
    steps_done: int
    teacher_ppl: float
    untrained_ppl: float
    student_ppl: float | None  # None when cancelled before the end
    student_parameters: int
    teacher_parameters: int
    seconds: float


def distill(config: DistillConfig, run_dir: Path, resume: bool = False, on_event: EventHandler = ignore_event,
            cancel: CancelToken | None = None) -> DistillResult:
    started = time.perf_counter()
    cancel = cancel or CancelToken()
    run_dir = Path(run_dir)
    config.validate()
    device = _pick_device(config)
    # Everything that can be checked cheaply is checked before the run directory is touched.
    teacher_source = sources.resolve(config.teacher)
    records = [r for spec in config.data for r in load_records(spec)]
    prompts = load_prompts(config.teacher_prompts) if config.teacher_prompts else []
    checkpoint = _check_run_dir(run_dir, resume)
    world, device = distributed.join(device)  # under torchrun: wait for the others (all passed the checks above)
    if not world.is_main:
        on_event = ignore_event  # rank 0 reports
    elif world.size > 1:
        on_event(Event("load", message=world.describe()))
    if world.is_main and not resume:
        _create_run_dir(config, run_dir)
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        teacher, tokenizer = _load_teacher(teacher_source, device, on_event)
        student, layers = _load_student(config, teacher, tokenizer, checkpoint, device, on_event)
        check_transferable(student, teacher, config.hidden_weight)
        if config.attention_weight > 0:
            use_eager_attention(teacher)
            use_eager_attention(student)
        # rank 0 writes the teacher's answers, the baseline and the top-k cache; the others wait, then read them
        train, held = world.main_first(
            lambda: _load_data(config, run_dir, records, prompts, teacher, tokenizer, on_event, cancel))
        student, masks = prepare_pruning(config, student, train, run_dir, checkpoint, on_event, write=world.is_main)
        baseline = world.main_first(lambda: _baseline(config, run_dir, teacher, student, held, on_event))
        topk = world.main_first(lambda: _teacher_cache(config, run_dir, teacher, train, device, on_event, cancel))
        teacher_parameters = parameter_count(teacher)
        if topk is not None:
            teacher = None  # training reads the cache; the teacher's weights need not stay in memory
        _release_freed_memory()
    except BaseException:
        if not resume and world.is_main:  # a fresh run that failed before training leaves nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise

    world.same_weights(student)
    if config.freeze_embeddings:
        _freeze_embeddings(student)
    # not with attention or hidden losses: they capture layer outputs, which a recomputation would capture again
    if config.activation_checkpointing and not _transfer_keys(config) and student.supports_gradient_checkpointing:
        student.activation_checkpointing_enable({"use_reentrant": False})
    optimizer, scheduler = _optimizer(config, student)
    hold_masks(optimizer, student, masks)  # pruned weights stay exactly zero after every optimizer step
    state = load_trainer_state(checkpoint, optimizer, scheduler) if checkpoint else TrainerState(0, 0)
    if checkpoint and world.is_main:
        _truncate_metrics(run_dir / "metrics.jsonl", state.step)
    on_event(Event("eval", step=state.step, total=config.steps, metrics=dict(baseline)))
    on_event(Event("train", step=state.step, total=config.steps, message=_describe_start(
        config, teacher_parameters, student, layers, train, held, state.step)))

    loop_start, start_step = time.perf_counter(), state.step
    student.train()
    while state.step < config.steps:
        if world.any(cancel.cancelled):  # all processes stop at the same step
            if world.is_main:
                save_checkpoint(run_dir, student, optimizer, scheduler, state)
            on_event(Event("train", step=state.step, total=config.steps, message="cancelled; checkpoint kept"))
            return _result(run_dir, "cancelled", state.step, baseline, None, teacher_parameters, student, started)
        metrics = world.average(_train_step(config, teacher, student, optimizer, scheduler, train, state, device,
                                            topk, world))
        elapsed = time.perf_counter() - loop_start
        done = state.step - start_step
        tokens = done * config.batch_size * config.grad_accum * config.seq_len * world.size
        metrics["tokens_per_s"] = tokens / elapsed
        metrics["eta_s"] = elapsed / done * (config.steps - state.step)
        if state.step % config.eval_every == 0 or state.step == config.steps:
            metrics["eval_ppl"] = perplexity(student, held, config.batch_size, config.eval_batches)
        if world.is_main:
            append_jsonl(run_dir / "metrics.jsonl", {"step": state.step, **metrics})
        on_event(Event("train", step=state.step, total=config.steps, metrics=metrics))
        if state.step % config.checkpoint_every == 0 and state.step < config.steps and world.is_main:
            save_checkpoint(run_dir, student, optimizer, scheduler, state)

    world.report(state.step, student)
    if world.is_main:
        save_checkpoint(run_dir, student, optimizer, scheduler, state)
        _save_student(run_dir / "student", student, tokenizer)
    student_ppl = perplexity(student, held, config.batch_size, config.eval_batches)
    result = _result(run_dir, "finished", state.step, baseline, student_ppl, teacher_parameters, student, started)
    if world.is_main:
        write_json(run_dir / "summary.json", {k: str(v) if isinstance(v, Path) else v
                                              for k, v in vars(result).items()})
    world.barrier()  # the run directory is complete when any process returns
    return result


def _train_step(config, teacher, student, optimizer, scheduler, train: TokenizedData, state: TrainerState,
                device, topk: TeacherTopK | None, world=distributed.SINGLE) -> dict[str, float]:
    sums = {"loss": 0.0, "kl": 0.0, "ce": 0.0}
    sums.update({key: 0.0 for key in _transfer_keys(config)})
    for _ in range(config.grad_accum):
        # each process takes its slice of one global batch drawn from the shared seeded stream
        index = world.shard(batch_indices(len(train), state.position, config.batch_size * world.size, config.seed))
        state.position += config.batch_size * world.size
        ids, attention = train.input_ids[index].to(device), train.attention_mask[index].to(device)
        real = train.target_mask[index, 1:].bool().to(device)  # position t predicts token t+1
        with _autocast(config, device):
            if _transfer_keys(config):
                s_last, t_last, extra = _forward_with_transfer(config, teacher, student, ids, attention)
            else:
                s_last, extra = student.model(input_ids=ids, attention_mask=attention).last_hidden_state, {}
                if topk is None:
                    with torch.no_grad():
                        t_last = teacher.model(input_ids=ids, attention_mask=attention).last_hidden_state
            hidden = s_last[:, :-1][real]
            if topk is None:
                target = (t_last[:, :-1][real].float(), teacher.get_output_embeddings().weight)
            else:
                target = topk.map(lambda t, index=index, real=real: t[index][:, :-1][real].to(device))
            # under bf16 autocast the vocabulary projection runs in bf16 too; softmax and losses stay fp32
            losses = chunked_distillation_loss(hidden, student.get_output_embeddings().weight,
                                               ids[:, 1:][real], target, config.alpha, config.temperature,
                                               config.loss, config.jsd_beta)
        losses.update(extra)
        losses["loss"] = losses["loss"] + sum(_transfer_keys(config)[key] * extra[key] for key in extra)
        (losses["loss"] / config.grad_accum).backward()
        for key in sums:
            sums[key] += float(losses[key].detach()) / config.grad_accum
    world.average_gradients(student.parameters())
    grad_norm = torch.nn.utils.clip_grad_norm_(
        student.parameters(), config.max_grad_norm if config.max_grad_norm > 0 else float("inf"))
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    state.step += 1
    return {**sums, "lr": lr, "grad_norm": float(grad_norm)}


def _transfer_keys(config) -> dict[str, float]:
    """Metric key -> weight of each intermediate-layer loss in use."""
    weights = {"attn": config.attention_weight, "hidden": config.hidden_weight}
    return {key: weight for key, weight in weights.items() if weight > 0}


def _forward_with_transfer(config, teacher, student, ids, attention):
    """Student and teacher passes that also return the attention maps / layer outputs the extra losses compare."""
    pairs = layer_pairs(student, teacher)
    keys = _transfer_keys(config)
    kwargs = {"hidden": "hidden" in keys, "attention": "attn" in keys}
    s_internals = run_with_internals(student, ids, attention, [s for s, _ in pairs], **kwargs)
    with torch.no_grad():
        t_internals = run_with_internals(teacher, ids, attention, [t for _, t in pairs], **kwargs)
    extra = transfer_losses(t_internals, s_internals, pairs, attention.bool())
    return s_internals.last_hidden, t_internals.last_hidden, extra


def _autocast(config, device):
    # no cache of bf16 weight copies: each weight is used once per pass, and with activation checkpointing the
    # copies are made again per layer in the backward pass and freed right after
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(config.precision, device),
                          cache_enabled=False)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """'auto' picks bf16 where it is native: measured 2.2x faster than fp32 on an AVX512-BF16 CPU (see
    benchmarks/RESULTS.md); without native support bf16 is emulated and slower."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _teacher_cache(config, run_dir: Path, teacher, train: TokenizedData, device, on_event, cancel):
    """The teacher's top-k log-probabilities and tail samples for every training position, computed once and kept
    in the run (float16 values, int32 token ids); safetensors' load_file maps the file rather than reading it."""
    if not config.teacher_topk:
        return None
    path = run_dir / "teacher_topk.safetensors"
    n, length, k, m = len(train), config.seq_len, config.teacher_topk, config.teacher_tail_samples
    shapes = {"log_probs": (n, length, k), "index": (n, length, k), "tail_index": (n, length, m),
              "tail_plogp": (n, length)}
    if not m:
        shapes = {key: shapes[key] for key in ("log_probs", "index")}
    try:
        saved = load_file(path)  # memory-mapped: pages are read when a batch touches them
        if {key: tuple(t.shape) for key, t in saved.items()} == shapes:
            return TeacherTopK(**saved)
    except (OSError, SafetensorError):  # absent or damaged: made again below
        pass
    dtypes = {"log_probs": torch.float16, "index": torch.int32, "tail_index": torch.int32,
              "tail_plogp": torch.float32}
    cache = {key: torch.zeros(shape, dtype=dtypes[key]) for key, shape in shapes.items()}
    head = teacher.get_output_embeddings().weight
    generator = torch.Generator(device=device).manual_seed(config.seed)
    for start in range(0, n, config.batch_size):
        if cancel.cancelled:
            raise Cancelled("cancelled while caching the teacher's outputs")
        rows = slice(start, start + config.batch_size)
        with torch.no_grad(), _autocast(config, device):
            hidden = teacher.model(input_ids=train.input_ids[rows].to(device),
                                   attention_mask=train.attention_mask[rows].to(device)).last_hidden_state
        top = teacher_top_k(hidden.float().flatten(0, 1), head, config.temperature, k, m, generator)
        for key, t in vars(top).items():
            if t is not None:
                cache[key][rows] = t.view(-1, length, *t.shape[1:]).to(dtypes[key]).cpu()
        on_event(Event("cache", step=min(start + config.batch_size, n), total=n,
                       message="" if start else f"caching the teacher's top-{k} outputs and {m} tail samples once"))
    with atomic_path(path) as tmp:
        save_file(cache, tmp)
    return TeacherTopK(**load_file(path))  # mapped from the file, not the arrays above: no memory of its own


def _check_run_dir(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from; refuses an occupied directory for a fresh run. Reads only."""
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise UserError(f"{run_dir} holds no complete checkpoint to resume from")
        return checkpoint
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir} already holds files; choose another --out or --resume {run_dir}")
    return None


def _create_run_dir(config: DistillConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "run.toml")


def _pick_device(config: DistillConfig) -> torch.device:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for, but no CUDA device is available")
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def _load_teacher(source, device, on_event):
    on_event(Event("load", message=f"loading teacher {source.name}"))
    teacher, tokenizer, _ = loading.load(source, device, on_event)
    teacher.eval().requires_grad_(False)
    return teacher, tokenizer


def _load_student(config, teacher, tokenizer, checkpoint: Path | None, device, on_event):
    n_teacher = teacher.config.num_hidden_layers
    if checkpoint is not None:
        student = loading.load_model(checkpoint, device)
        return student, getattr(student.config, "slm_studio_layer_map", None)
    if config.student_model:
        on_event(Event("load", message=f"loading student {config.student_model}"))
        source = sources.resolve(config.student_model)
        student, student_tokenizer, _ = loading.load(source, device, on_event)
        check_compatible(teacher, tokenizer, student, student_tokenizer)
        return student, None
    layers = plan_layers(n_teacher, config.student_layers, list(config.student_layer_list))
    student = derive_student(teacher, StudentPlan(layers, config.student_mlp_ratio)).to(device)
    return student, layers


def _load_data(config, run_dir: Path, records, prompts, teacher, tokenizer, on_event, cancel):
    if prompts:
        on_event(Event("generate", step=0, total=len(prompts), message="the teacher answers the prompt set"))
        answers = generate_answers(teacher, tokenizer, prompts, run_dir / "teacher_answers.jsonl",
                                   config.generate_max_tokens, config.generate_temperature,
                                   config.generate_batch_size, config.seed, on_event, cancel)
        records += [{"messages": [{"role": "user", "content": a["prompt"]},
                                  {"role": "assistant", "content": a["response"]}]} for a in answers]
    return split_holdout(tokenize(records, tokenizer, config.seq_len), config.holdout_fraction, config.seed)


def _baseline(config, run_dir: Path, teacher, student, held, on_event) -> dict:
    """Teacher's and untrained student's held-out perplexity, measured once per run."""
    path = run_dir / "baseline.json"
    if path.exists():
        return json.loads(path.read_text())
    on_event(Event("eval", message="held-out perplexity of the teacher and the untrained student"))
    baseline = {"teacher_ppl": perplexity(teacher, held, config.batch_size, config.eval_batches),
                "untrained_ppl": perplexity(student, held, config.batch_size, config.eval_batches)}
    write_json(path, baseline)
    return baseline


def _freeze_embeddings(student) -> None:
    """The token embedding (and the output head, tied or not) keep the teacher's values: the vocabulary matrices
    get no gradients and no optimizer state, the largest memory saving there is (49152 x 576 values here)."""
    for module in (student.get_input_embeddings(), student.get_output_embeddings()):
        module.weight.requires_grad_(False)


def _optimizer(config: DistillConfig, student):
    trained = [p for p in student.parameters() if p.requires_grad]
    decay = [p for p in trained if p.ndim >= 2]
    no_decay = [p for p in trained if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer_state == "bf16":
        optimizer = BF16StateAdamW(groups, lr=config.lr, seed=config.seed)
    else:
        optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=True)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step))


def lr_factor(config: DistillConfig, step: int) -> float:
    """Linear warm-up to 1, then cosine decay to min_lr_ratio at the last step."""
    if step < config.warmup_steps:
        return (step + 1) / (config.warmup_steps + 1)
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _release_freed_memory() -> None:
    """Hand memory freed by the set-up (the teacher's passes) back to the system, where the C library allows."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc; absent elsewhere
    except (OSError, AttributeError):
        pass


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics logged after the checkpoint we resume from, so every step appears once."""
    if path.exists():
        kept = [row for row in read_jsonl(path) if row["step"] <= step]
        write_text(path, "".join(json.dumps(row) + "\n" for row in kept))


def _save_student(folder: Path, student, tokenizer) -> None:
    with atomic_dir(folder) as tmp:
        student.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def _describe_start(config, teacher_parameters, student, layers, train, held, step) -> str:
    kept = f"layers {layers}" if layers else "a given student"
    return (f"teacher {teacher_parameters / 1e6:.1f}M params, student {parameter_count(student) / 1e6:.1f}M "
            f"({kept}); {len(train)} training and {len(held)} held-out sequences of {config.seq_len} tokens; "
            + (f"resuming at step {step}" if step else "starting"))


def _result(run_dir, status, steps, baseline, student_ppl, teacher_parameters, student, started) -> DistillResult:
    return DistillResult(run_dir=run_dir, status=status, steps_done=steps, teacher_ppl=baseline["teacher_ppl"],
                         untrained_ppl=baseline["untrained_ppl"], student_ppl=student_ppl,
                         student_parameters=parameter_count(student), teacher_parameters=teacher_parameters,
                         seconds=time.perf_counter() - started)
