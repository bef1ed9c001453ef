"""RUN_DIR/report.md and the terminal table: the evaluation's numbers as text."""

from __future__ import annotations

from slm_studio.evaluate.result import EvalResult
from slm_studio.prune import SIZE_NOTE


def format_ppl(value: float) -> str:
    """Plain digits for a usable model; an untrained one's astronomic perplexity in scientific notation."""
    return f"{value:,.2f}" if value < 1e6 else f"{value:.3g}"


def quality_rows(r: EvalResult) -> list[tuple[str, str]]:
    untrained = format_ppl(r.untrained_ppl) if r.untrained_ppl is not None else "unknown"
    rows = [("held-out tokens", f"{r.held_out_tokens} ({r.held_out_sequences} sequences)"),
            ("teacher perplexity (torch)", format_ppl(r.teacher_ppl)),
            ("untrained student perplexity", f"{untrained} ({r.untrained_source})"),
            ("distilled student perplexity", format_ppl(r.student_ppl)),
            ("top-1 agreement with the teacher", f"{r.top1_agreement:.1%}"),
            ("mean KL(teacher || student), T=1", f"{r.mean_kl:.4f} nats")]
    if r.untrained_top1_agreement is not None:
        rows += [("untrained: top-1 agreement / mean KL",
                  f"{r.untrained_top1_agreement:.1%} / {r.untrained_mean_kl:.4f} nats")]
    share = r.student_parameters / r.teacher_parameters
    rows += [("parameters: teacher / student",
              f"{r.teacher_parameters / 1e6:.1f}M / {r.student_parameters / 1e6:.1f}M ({share:.0%})"),
             ("student safetensors", f"{r.student_safetensors_bytes / 1e6:.1f} MB")]
    if r.pruning:
        rows += [("pruning", f"{r.pruning.get('method', '?')}, sparsity {_sparsity(r)}")]
    return rows


QUANT_COLUMNS = ["model", "type", "size MB", "perplexity (llama.cpp)", "prompt tok/s", "gen tok/s", "Pareto"]


def quant_header(r: EvalResult) -> list[str]:
    return QUANT_COLUMNS[:2] + ["sparsity"] + QUANT_COLUMNS[2:] if r.pruning else QUANT_COLUMNS


def quant_rows(r: EvalResult) -> list[list[str]]:
    rows = []
    for p in r.points:
        row = [p.model, p.quant, f"{p.size_mb:.1f}", format_ppl(p.perplexity), f"{p.prompt_tps:.0f}",
               f"{p.generation_tps:.1f}", "yes" if p.label in r.front else ""]
        if r.pruning:
            row.insert(2, _sparsity(r) if p.model == "student" else "0%")
        rows.append(row)
    return rows


def _sparsity(r: EvalResult) -> str:
    value = r.pruning.get("sparsity_achieved") if r.pruning else None
    return f"{value:.1%}" if isinstance(value, (int, float)) else "?"


def markdown(r: EvalResult, plot_name: str | None) -> str:
    intro = (f"Held-out text rebuilt exactly as the trainer split it; every number below is measured on the same "
             f"{r.held_out_tokens} target tokens. Speeds: llama.cpp on {r.threads} threads (a busy machine "
             f"makes them noisy).")
    lines = [f"# Evaluation of {r.run_dir}", "", intro, "", "## Quality", "", "| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in quality_rows(r)]
    header = quant_header(r)
    lines += ["", "## Compression and quality", "", "| " + " | ".join(header) + " |",
              "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in quant_rows(r)]
    lines += ["", f"Pareto front (no other file is both smaller and better): {', '.join(r.front)}."]
    if r.pruning and r.pruning.get("method") == "unstructured":
        lines += ["", SIZE_NOTE]
    if plot_name:
        lines += ["", f"![Held-out perplexity against file size]({plot_name})"]
    lines += ["", f"Evaluated in {r.seconds:.0f} s.", ""]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *rows])
