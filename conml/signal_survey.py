"""ConML's gradient share at initialisation, for every learner at its paper settings and each psi option.

One meta-batch per case, built from the paper preset: the real episode source where it needs no
download (sine waves, in-context function classes), and otherwise synthetic images of the real
miniImageNet shape (84 px, normalised, noise around a class colour close to the others') in 5-way 1-shot episodes
with 5 queries per class. Simple CNAPs gets a randomly initialised frozen ResNet-18 there (the
pretrained one cannot be downloaded here). The same image learners are also measured on real
Omniglot episodes: the first training meta-batch of each 5-way 1-shot ConML cell of the Omniglot
table, drawn from the prepared data exactly as that cell's run draws it (its episode shape and
meta-batch size), Simple CNAPs with the ResNet-18 its cells load (pretrained here on Omniglot).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from conml.build import build
from conml.checkpoint import seed_everything
from conml.config import register
from conml.data.images.cache import MANIFEST
from conml.distributed import TaskShard
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import DataError
from conml.gradient_share import gradient_share
from conml.objective import ConMLObjective
from conml.tables.table_sweep import preset_overrides
from conml.task_kind import CLASSIFICATION

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
IMAGE_SIZE, WAYS, SHOTS, QUERIES = 84, 5, 1, 5
# What a case's episodes are (the `data` column of docs/results/conml_signal.md); the two kinds of
# case a survey can be restricted to are the synthetic ones (no dataset needed) and the real Omniglot ones.
SINE, ICL, SYNTHETIC_IMAGES, OMNIGLOT = "sine waves", "linear regression tasks", "synthetic 84 px", "Omniglot (real)"
SURVEYS = {"synthetic": (SINE, ICL, SYNTHETIC_IMAGES), "omniglot": (OMNIGLOT,)}


@dataclass(frozen=True)
class Case:
    """One measurement: a learner's paper preset (or table cell) with psi overrides, on `data`."""

    learner: str
    psi: str
    preset: str
    overrides: tuple[str, ...] = ()
    data: str = SYNTHETIC_IMAGES


def paper_cases(image_tasks: int) -> list[Case]:
    """Each learner at its paper psi, then each alternative psi and meta-batch centring; each image
    learner of the Omniglot table is followed by the same options on real Omniglot episodes."""
    mini = "miniimagenet-{}-1shot-conml"
    omniglot = "omniglot-{}-5way-1shot-conml"  # the cells' own meta-batch sizes: 28 px fits a CPU
    images = [f"trainer.meta_batch_size={image_tasks}"]
    weight_options = [
        ("weights (paper)", ()),
        ("update", ("learner.representation=update",)),
        ("weights, centred on the meta-batch", ("conml.centring=meta_batch",)),
    ]
    prototype_options = [
        ("prototypes (paper)", ()),
        ("centred prototypes", ("learner.representation=centred",)),
        ("prototypes, centred on the meta-batch", ("conml.centring=meta_batch",)),
    ]
    film_options = [
        ("FiLM (paper)", ()),
        ("FiLM offset (gamma - 1, beta)", ("learner.representation=offset",)),
        ("FiLM, centred on the meta-batch", ("conml.centring=meta_batch",)),
    ]
    cases = [Case("sine MAML 5-shot", psi, "sinusoid-maml-5shot-conml", o, SINE) for psi, o in weight_options]
    for learners, options in (
        (("maml", "fomaml", "reptile"), weight_options),
        (("protonet", "matchingnet"), prototype_options),
    ):
        for learner in learners:
            cases += [Case(f"{learner} 1-shot", psi, mini.format(learner), (*images, *o)) for psi, o in options]
            cases += [Case(f"{learner} 5-way 1-shot", psi, omniglot.format(learner), o, OMNIGLOT) for psi, o in options]
    cases += [Case("simple_cnaps 1-shot", psi, mini.format("simple_cnaps"), (*images, *o)) for psi, o in film_options]
    simple_cnaps = omniglot.format("simple_cnaps")
    cases += [Case("simple_cnaps 5-way 1-shot", psi, simple_cnaps, o, OMNIGLOT) for psi, o in film_options]
    cases.append(
        Case("ICL linear regression (toy)", "prediction at the probe (paper)", "linear_regression-toy-conml", data=ICL)
    )
    return cases


def require_data(cases: list[Case]) -> None:
    """Refuse, before anything is measured, real-data cases whose prepared dataset, or whose feature extractor
    pretrained on it (Simple CNAPs'), is absent."""
    real = [case for case in cases if case.data == OMNIGLOT]
    if not real:
        return
    root = Path(compose_case(real[0], seed=0).dataset.root).resolve()
    if not (root / MANIFEST).is_file():
        raise DataError(
            f"The real Omniglot cases need the prepared Omniglot data in {root}, which holds no {MANIFEST}: prepare "
            "it with `make data-omniglot` (it writes under $CONML_DATA, else data/), or measure only the other cases "
            "with --data synthetic."
        )
    for case in real:
        model = compose_case(case, seed=0).model
        if model._target_.endswith("FilmResNet18") and not Path(model.pretrained).is_file():
            raise DataError(
                f"The real Omniglot case of {case.learner} needs the ResNet-18 pretrained on Omniglot at "
                f"{Path(model.pretrained).resolve()}, which does not exist: pretrain and export it as "
                "docs/results/omniglot.md shows (`experiment=omniglot/pretrain_resnet18_film`, then "
                "`python -m conml.nets.export_extractor`), or measure only the other cases with --data synthetic."
            )


def compose_case(case: Case, seed: int):
    register()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*preset_overrides(case.preset), f"seed={seed}", "device=cpu", *case.overrides],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def synthetic_images(tasks: int, seed: int) -> EpisodeBatch:
    """5-way 1-shot episodes of 84 px images, normalised: pixel noise around a class colour that
    differs little from the other classes', so that no learner separates them at once (separable
    classes would drive the episodic gradient, the share's denominator, to zero)."""
    g = torch.Generator().manual_seed(seed)
    colours = 0.5 + 0.05 * torch.randn(tasks, WAYS, 3, 1, 1, generator=g)

    def draw(per_class: int) -> Tasks:
        labels = torch.arange(WAYS).repeat_interleave(per_class).expand(tasks, -1)
        base = colours[torch.arange(tasks)[:, None], labels]
        noise = 0.25 * torch.randn(tasks, WAYS * per_class, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
        return Tasks(((base + noise).clamp(0, 1) - 0.45) / 0.225, labels.clone())

    return EpisodeBatch(draw(SHOTS), draw(QUERIES))


def measure(case: Case, seed: int = 0) -> dict:
    """The share, both gradient norms, d_in and d_out of one meta-batch at initialisation."""
    cfg = compose_case(case, seed)
    seed_everything(seed)
    tasks = cfg.trainer.meta_batch_size
    with tempfile.TemporaryDirectory() as scratch:
        if case.data == SYNTHETIC_IMAGES and cfg.model._target_.endswith("FilmResNet18"):
            random_backbone = Path(scratch) / "resnet18.pt"
            torch.save(build(cfg.model, pretrained=None, frozen=False).state_dict(), random_backbone)
            cfg.model.pretrained = str(random_backbone)
        net = build(cfg.model)
    if case.data == SYNTHETIC_IMAGES:
        batch, kind = synthetic_images(tasks, seed), CLASSIFICATION
    else:
        source = build(cfg.dataset)
        batch, kind = source.sample("train", 0, tasks), source.kind
    learner = build(cfg.learner, net=net, kind=kind).train()
    objective = ConMLObjective(OmegaConf.to_object(cfg.conml))
    parts = objective(learner, batch)
    learner.zero_grad(set_to_none=True)
    parts.total.backward(retain_graph=True)
    share, conml_norm, episodic_norm = gradient_share(parts.contrastive, list(learner.parameters()), TaskShard())
    return {
        "learner": case.learner,
        "psi": case.psi,
        "data": case.data,
        "command": " ".join([*preset_overrides(case.preset), *case.overrides]),
        "tasks": tasks,
        "share": share,
        "conml_grad_norm": conml_norm,
        "episodic_grad_norm": episodic_norm,
        "d_in": float(parts.d_in.detach()),
        "d_out": float(parts.d_out.detach()),
        "episodic_loss": float(parts.episodic.detach()),
    }
