"""Pruning of a run's student before distillation; distillation then recovers what pruning cost.

    slm-studio distill --preset quick --prune unstructured --sparsity 0.5
    slm-studio distill --preset quick --prune structured --sparsity 0.3 --prune-layers 2

`prepare_pruning` is the one call the trainer makes: it prunes a fresh run's student (writing `pruning.json` and,
for unstructured pruning, `pruning_masks.safetensors`), or gives a resumed run its masks back. `hold_masks` keeps
pruned weights at exactly zero after every optimizer step.
"""

from __future__ import annotations

import json
from pathlib import Path

from slm_studio.events import Event, EventHandler, ignore_event
from slm_studio.fileio import write_json
from slm_studio.models.student import parameter_count
from slm_studio.prune.calibrate import calibration_batches, collect
from slm_studio.prune.structured import apply_structure, describe_plan, plan_structure
from slm_studio.prune.unstructured import (
    apply_masks,
    choose_masks,
    hold_masks,
    load_masks,
    save_masks,
    weight_scores,
    zero_share,
)

__all__ = ["SIZE_NOTE", "describe_pruning", "hold_masks", "prepare_pruning", "read_summary"]

MASKS_FILE = "pruning_masks.safetensors"
SUMMARY_FILE = "pruning.json"
SIZE_NOTE = ("Unstructured sparsity does not shrink a GGUF file nor speed up llama.cpp: the zeros are stored and "
             "multiplied like any other weight. Structured pruning removes whole heads, MLP channels and layers, "
             "so its GGUF is smaller and runs faster.")


def prepare_pruning(config, student, train, run_dir: Path, checkpoint: Path | None,
                    on_event: EventHandler = ignore_event, write: bool = True):
    """(student, masks): the pruned student of a fresh run, or a resumed run's student with its masks.
    `write=False` for the processes after rank 0 under torchrun: they prune alike and leave the files to rank 0."""
    run_dir = Path(run_dir)
    if config.prune == "none":
        return student, None
    if checkpoint is not None:  # the checkpoint already holds the pruned (and, if structured, smaller) student
        if config.prune != "unstructured":
            return student, None
        masks = load_masks(run_dir / MASKS_FILE, student)
        apply_masks(student, masks)
        return student, masks
    on_event(Event("prune", message=f"{config.prune} pruning to sparsity {config.sparsity} ({config.prune_score} "
                                    f"score), measured on {config.calibration_batches} training batches"))
    needs_activations = config.prune == "structured" or config.prune_score == "activation"
    stats = collect(student, calibration_batches(train, config.calibration_batches, config.batch_size,
                                                 config.seed)) if needs_activations else None
    before = parameter_count(student)
    summary = {"method": config.prune, "score": config.prune_score, "sparsity_target": config.sparsity,
               "calibration_tokens": stats.tokens if stats else 0, "parameters_before": before}
    masks = None
    if config.prune == "unstructured":
        masks = choose_masks(weight_scores(student, config.prune_score, stats), config.sparsity, config.prune_scope)
        apply_masks(student, masks)
        if write:
            save_masks(run_dir / MASKS_FILE, masks)
        prunable, overall = zero_share(student, masks)
        summary |= {"scope": config.prune_scope, "sparsity_achieved": prunable, "sparsity_of_all_parameters": overall,
                    "prunable_weights": sum(m.numel() for m in masks.values()), "parameters_after": before}
    else:
        plan = plan_structure(student, stats, config.sparsity, config.prune_layers, config.prune_score)
        kept = describe_plan(student, plan)
        student = apply_structure(student, plan)
        after = parameter_count(student)
        summary |= {"scope": "layer", "sparsity_achieved": 1 - after / before, "parameters_after": after, **kept,
                    "layer_map": getattr(student.config, "slm_studio_layer_map", None)}
    if write:
        write_json(run_dir / SUMMARY_FILE, summary)
    on_event(Event("prune", metrics={k: summary[k] for k in ("sparsity_achieved", "parameters_before",
                                                             "parameters_after")},
                   message=describe_pruning(summary)))
    return student, masks


def describe_pruning(summary: dict) -> str:
    """One line about what pruning achieved (the CLI and the app print it)."""
    if summary["method"] == "unstructured":
        return (f"unstructured ({summary['score']}, {summary['scope']}): {summary['sparsity_achieved']:.1%} of the "
                f"prunable weights are zero ({summary['sparsity_of_all_parameters']:.1%} of all parameters)")
    return (f"structured ({summary['score']}): {summary['parameters_before'] / 1e6:.1f}M -> "
            f"{summary['parameters_after'] / 1e6:.1f}M parameters ({summary['sparsity_achieved']:.1%} removed); "
            f"per layer {summary['query_heads_per_layer']} of {summary['before']['query_heads']} query heads "
            f"({summary['kv_groups_per_layer']} of {summary['before']['kv_groups']} KV groups), "
            f"{summary['mlp_channels_per_layer']} of {summary['before']['mlp_channels']} MLP channels; "
            f"{len(summary['layers_kept'])} of {summary['before']['layers']} layers")


def read_summary(run_dir: Path) -> dict | None:
    """A run's pruning.json, or None for a run that was not pruned."""
    path = Path(run_dir) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.exists() else None

