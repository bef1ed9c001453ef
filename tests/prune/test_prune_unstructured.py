"""Unstructured pruning: exact shares, importance that listens to activations, masks held through training."""

import json

import pytest
import torch
from safetensors.torch import load_file

from slm_studio.cli import _print_pruning, build_parser, distill_config
from slm_studio.cli import main as cli_main
from slm_studio.config import DistillConfig
from slm_studio.distill.checkpoint import list_checkpoints
from slm_studio.distill.trainer import distill
from slm_studio.events import CancelToken
from slm_studio.models.loading import load_model
from slm_studio.prune.calibrate import collect, prunable_linears
from slm_studio.prune.unstructured import apply_masks, choose_masks, hold_masks, weight_scores, zero_share


def small_corpus(folder) -> str:
    """A few thousand tokens of varied prose: enough for calibration and a few steps, quick to tokenize."""
    import pydoc_data.topics

    text = "\n\n".join(list(pydoc_data.topics.topics.values())[:12])
    (folder / "corpus.txt").write_text(text)
    return str(folder / "corpus.txt")


def _batches(vocab: int = 49152, n: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, vocab, (2, 16), generator=generator), torch.ones(2, 16, dtype=torch.long))
            for _ in range(n)]


@pytest.fixture
def tiny(tiny_teacher):
    return load_model(tiny_teacher)


def test_layer_scope_prunes_the_exact_share_of_every_matrix_and_nothing_else(tiny):
    embeddings = tiny.model.embed_tokens.weight.clone()
    masks = choose_masks(weight_scores(tiny, "magnitude"), 0.5, "layer")
    apply_masks(tiny, masks)
    for name, module in prunable_linears(tiny).items():
        assert int((module.weight == 0).sum()) == module.weight.numel() // 2, name
        kept = module.weight[masks[name]].abs().min()
        assert kept >= module.weight[~masks[name]].abs().max()  # the smallest weights went (all now zero)
    assert torch.equal(tiny.model.embed_tokens.weight, embeddings)
    prunable, overall = zero_share(tiny, masks)
    assert prunable == pytest.approx(0.5) and 0 < overall < prunable


def test_global_scope_reaches_the_share_overall_with_different_shares_per_matrix(tiny):
    with torch.no_grad():
        tiny.model.layers[0].mlp.up_proj.weight.mul_(10)  # one loud matrix keeps more of its weights
    masks = choose_masks(weight_scores(tiny, "magnitude"), 0.6, "global")
    apply_masks(tiny, masks)
    assert zero_share(tiny, masks)[0] == pytest.approx(0.6, abs=1e-4)
    assert float((~masks["model.layers.0.mlp.up_proj.weight"]).float().mean()) < 0.1
    assert float((~masks["model.layers.1.mlp.up_proj.weight"]).float().mean()) > 0.6


def test_activation_score_prunes_large_weights_on_a_silent_input(tiny):
    """down_proj sees act(gate) * up: zeroing gate row 3 silences channel 3, whose down_proj column we make the
    largest weights of the matrix. Magnitude keeps that column; the activation-aware score drops it."""
    mlp = tiny.model.layers[1].mlp
    with torch.no_grad():
        mlp.gate_proj.weight[3] = 0
        mlp.down_proj.weight[:, 3] = 1.0
    name = "model.layers.1.mlp.down_proj.weight"
    stats = collect(tiny, _batches())
    assert stats.input_norm(name)[3] == 0 and stats.input_norm(name)[4] > 0
    by_magnitude = choose_masks(weight_scores(tiny, "magnitude"), 0.5, "layer")[name]
    by_activation = choose_masks(weight_scores(tiny, "activation", stats), 0.5, "layer")[name]
    assert by_magnitude[:, 3].all() and not by_activation[:, 3].any()


def test_held_masks_survive_optimizer_steps_with_weight_decay(tiny):
    masks = choose_masks(weight_scores(tiny, "magnitude"), 0.5, "layer")
    apply_masks(tiny, masks)
    optimizer = torch.optim.AdamW(tiny.parameters(), lr=1e-2, weight_decay=0.1)
    hold_masks(optimizer, tiny, masks)
    ids, attention = _batches(n=1)[0]
    before = tiny.model.layers[0].mlp.up_proj.weight.clone()
    for _ in range(3):
        tiny(input_ids=ids, attention_mask=attention, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = tiny.model.layers[0].mlp.up_proj.weight
    assert zero_share(tiny, masks)[0] == 0.5
    assert not torch.equal(before[masks["model.layers.0.mlp.up_proj.weight"]],
                           after[masks["model.layers.0.mlp.up_proj.weight"]])  # the kept weights did train


def _zeros_where_masked(weights: dict, masks: dict) -> None:
    for name, keep in masks.items():
        assert torch.all(weights[name][~keep] == 0), name
        assert torch.all(weights[name][keep] != 0), name  # exactly the masked weights are zero


def test_sparsity_holds_in_every_checkpoint_after_resume_and_in_the_saved_student(tmp_path, tiny_config, capsys):
    tiny_config.prune, tiny_config.sparsity, tiny_config.steps = "unstructured", 0.5, 6
    tiny_config.data = [small_corpus(tmp_path)]
    cancel = CancelToken()

    def stop_after_step_3(event):
        if event.stage == "train" and event.step == 3 and event.metrics:
            cancel.cancel()

    run = tmp_path / "run"
    events = []
    first = distill(tiny_config, run, on_event=lambda e: (events.append(e), stop_after_step_3(e)), cancel=cancel)
    assert first.status == "cancelled"
    summary = json.loads((run / "pruning.json").read_text())
    assert summary["method"] == "unstructured" and summary["sparsity_achieved"] == 0.5
    assert summary["parameters_before"] == summary["parameters_after"]
    assert any(e.stage == "prune" and e.metrics.get("sparsity_achieved") == 0.5 for e in events)
    masks = load_file(run / "pruning_masks.safetensors")
    _zeros_where_masked(load_file(list_checkpoints(run)[-1] / "model.safetensors"), masks)

    second = distill(DistillConfig.load(run / "run.toml"), run, resume=True)
    assert second.status == "finished" and second.steps_done == 6
    assert load_file(run / "pruning_masks.safetensors").keys() == masks.keys()
    for checkpoint in list_checkpoints(run):
        _zeros_where_masked(load_file(checkpoint / "model.safetensors"), masks)
    student = load_file(run / "student" / "model.safetensors")
    _zeros_where_masked(student, masks)
    _print_pruning(run)  # what `slm-studio distill` prints at the end
    out = capsys.readouterr().out
    assert "50.0% of the prunable weights are zero" in out and "does not shrink a GGUF file nor speed up" in out


def test_bad_pruning_settings_are_refused_in_one_line(tiny_teacher, capsys):
    for values, field in [({"sparsity": 1.0}, "sparsity"), ({"sparsity": -0.1}, "sparsity"),
                          ({"prune": "random"}, "prune"), ({"prune_score": "gradient"}, "prune_score"),
                          ({"prune": "unstructured", "prune_layers": 2}, "prune_layers"),
                          ({"prune": "structured", "student_layers": 3, "prune_layers": 3}, "prune_layers"),
                          ({"calibration_batches": 0}, "calibration_batches")]:
        assert field in DistillConfig(**values).problems(), values
    code = cli_main(["distill", "--teacher", str(tiny_teacher), "--prune", "unstructured", "--sparsity", "1.0",
                     "--out", "/nonexistent/never-created"])
    assert code == 2 and "sparsity must lie in [0, 1)" in capsys.readouterr().err


def test_cli_flags_set_the_pruning_fields():
    args = build_parser().parse_args(["distill", "--prune", "unstructured", "--sparsity", "0.3", "--prune-score",
                                      "magnitude", "--prune-scope", "global", "--calibration-batches", "2"])
    config = distill_config(args)
    assert (config.prune, config.sparsity, config.prune_score, config.prune_scope, config.calibration_batches) == (
        "unstructured", 0.3, "magnitude", "global", 2)
    args = build_parser().parse_args(["distill", "--prune", "structured", "--prune-layers", "3"])
    assert distill_config(args).prune_layers == 3
