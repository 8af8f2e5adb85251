"""A table cell's run name (also its W&B group, output folder and tags), from the values its table sweeps.

The one place the name is derived: the protocols' `name` and `logger.tags`
(configs/experiment_parts/*/run_name.yaml, through the `cell_name` and `cell_tags` resolvers) and the tables
(`conml.tables.table_sweep.SweepCell.run_name`) both call `cell_labels`, so that a table finds the runs its
launch made: miniimagenet-maml-1shot-plain, omniglot-maml-5way-1shot-conml, same_different-fomaml-kim_conv6.
"""

from __future__ import annotations

from typing import Any, Mapping

# The word a run name uses for each ConML setting (conml=icl is ConML for in-context learners).
VARIANTS = {"off": "plain", "on": "conml", "icl": "conml"}


def cell_labels(values: Mapping[str, Any]) -> list[str]:
    """How each swept value reads in a run name, in the order given; keys as the table files sweep them
    (`dataset`, `learner` or `experiment`, `dataset.ways`, `dataset.shots`, `conml`, `model`)."""
    return [_label(key, str(value)) for key, value in values.items()]


def cell_name(values: Mapping[str, Any]) -> str:
    """`${cell_name:{dataset:...,learner:...,dataset.shots:...,conml:...}}`: the parts joined by '-'."""
    return "-".join(cell_labels(values))


def cell_tags(values: Mapping[str, Any]) -> list[str]:
    """`${cell_tags:{...}}`: the run's W&B tags, one per part of its name."""
    return cell_labels(values)


def leaf(choice: str) -> str:
    """`${leaf:${hydra:runtime.choices.experiment}}`: a config option without its folder (sine/conml ->
    conml), so that a run name can say which protocol file made it."""
    return choice.rsplit("/", 1)[-1]


def _label(key: str, value: str) -> str:
    if key == "experiment":
        return leaf(value)
    if key == "dataset.ways":
        return f"{value}way"
    if key == "dataset.shots":
        return f"{value}shot"
    if key == "conml":
        return VARIANTS[value]
    return value
