"""The built model against the data: one validation task through the learner before training, so that a
model made for other inputs, or a classifier head of the wrong width, fails at start-up with the shapes."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from conml.errors import ConfigError
from conml.task_kind import CLASSIFICATION


def check_fit(cfg: DictConfig, source, learner, device: torch.device) -> None:
    """Meta-test a validation task before anything else, so that a model built for other inputs
    (another image size, input width or number of ways) fails at start-up with the shapes involved. It is
    meta-testing (`Learner.meta_test`): no dropout mask drawn, no BatchNorm statistics updated by this look."""
    batch = source.sample("val", 0, 1).to(device)
    try:
        check_head_width(cfg, learner, batch.support.x[0, :2])
        learner.meta_test(batch)
    except RuntimeError as error:
        if not any(hint in str(error) for hint in ("shape", "size", "mat1", "dimension")):
            raise
        first = str(error).strip().splitlines()[0]
        raise ConfigError(
            f"The model ({cfg.model._target_}) cannot take the episodes of the dataset ({cfg.dataset._target_}): "
            f"support inputs have shape {tuple(batch.support.x.shape)} [tasks, examples, ...] and labels {tuple(batch.support.y.shape)}, "
            f"and the model failed with: {first}. Make the model settings match the data, e.g. model.image_size "
            "(and the image size the dataset was prepared at), model.in_features, or model.out_features = dataset.ways."
        ) from None


def check_head_width(cfg: DictConfig, learner, x: torch.Tensor) -> None:
    """A learner that classifies with its net's outputs needs exactly one output per way: wider, the extra
    outputs are classes no task has (a 5-way task on 800 outputs trains below chance, silently); narrower,
    some labels have no output. Measured with one forward pass of two examples `x`, so any backbone is checked."""
    ways = cfg.dataset.get("ways")
    if not (learner.kind is CLASSIFICATION and learner.predicts_with_net_head and isinstance(ways, int)):
        return  # metric learners embed; datasets of varying ways (ways: null) have no one width to match
    training = learner.net.training
    learner.net.eval()  # no batch-norm statistics are updated by this look
    try:
        with torch.no_grad():
            width = learner.net(x).shape[-1]
    finally:
        learner.net.train(training)
    train_ways = cfg.dataset.get("train_ways") or ways
    if width == ways == train_ways:
        return
    needed = (
        f"{ways}" if train_ways == ways else f"{ways} at meta-test and dataset.train_ways={train_ways} at meta-training"
    )
    fix = (
        "Set model.out_features=${dataset.ways} (the MAML and Reptile presets do)"
        if train_ways == ways
        else "A learner that classifies with its net's head needs one number of ways: leave dataset.train_ways null"
    )
    raise ConfigError(
        f"learner={cfg.learner._target_} classifies with its model's outputs, but the model ({cfg.model._target_}, "
        f"model.out_features={cfg.model.get('out_features')}) has {width} outputs while the tasks have dataset.ways={needed}: "
        f"each output is one class, so the widths must match (extra outputs are classes no task has, and accuracy falls "
        f"below chance without an error). {fix}, or choose a metric learner (protonet, matchingnet), which embeds instead."
    )
