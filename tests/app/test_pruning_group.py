"""The Distill form's Pruning group: the same config fields as the CLI, validated and explained."""

from slm_studio.config import DistillConfig


def test_pruning_settings_round_trip_through_the_form(window, tiny_teacher):
    form = window.distill_page.form
    config = DistillConfig(teacher=str(tiny_teacher), student_layers=4, prune="structured", sparsity=0.3,
                           prune_score="magnitude", prune_layers=1)
    form.set_config(config)
    assert form.config() == config
    assert form.pruning.layers.isEnabled() and not form.pruning.scope.isEnabled()
    form.pruning.method.setCurrentIndex(form.pruning.method.findData("unstructured"))
    form.pruning.layers.setValue(0)
    form.pruning.scope.setCurrentIndex(form.pruning.scope.findData("global"))
    assert (form.config().prune, form.config().prune_scope) == ("unstructured", "global")
    assert "does not shrink a GGUF" in form.pruning.note.text()


def test_removing_layers_without_structured_pruning_is_marked_and_blocks_start(window):
    form = window.distill_page.form
    form.pruning.method.setCurrentIndex(form.pruning.method.findData("unstructured"))
    form.pruning.layers.setEnabled(True)  # (disabled in the UI for this method; a loaded config may still set it)
    form.pruning.layers.setValue(2)
    assert "prune_layers" in form.problems()
    assert "border" in form.pruning.layers.styleSheet() and "needs prune = structured" in form.problem_label.text()
    assert not window.distill_page.start_button.isEnabled()
    form.pruning.method.setCurrentIndex(form.pruning.method.findData("structured"))
    assert "prune_layers" not in form.problems() and window.distill_page.start_button.isEnabled()
