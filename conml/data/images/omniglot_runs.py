"""Lake et al.'s 20 official within-alphabet 20-way one-shot runs of Omniglot (`all_runs.zip`).

Run r has 20 training drawings (`runNN/training/class01..20.png`), one per character of one
evaluation alphabet, and 20 test drawings (`runNN/test/item01..20.png`); `runNN/class_labels.txt`
pairs each test drawing with the training drawing of its character. A run is one 20-way 1-shot
task with 20 queries, and Lake's metric is the error rate: the share of test drawings given the
wrong character, averaged over the 20 runs (Lake et al. 2015, Fig. 3 and its supplement).

Preparation stores them, preprocessed as the other Omniglot drawings, in `lake_runs.npz` beside the
caches; `python -m conml.data.images.omniglot_runs <run folder>` meta-tests a trained 20-way
learner on them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from conml.data.images.cache import read_manifest
from conml.data.images.omniglot import IMAGE_SIZE, RUNS, decode, find
from conml.episodes import EpisodeBatch, Tasks
from conml.errors import DataError, UserError
from conml.metrics import MeanCI, mean_ci

COUNT, WAYS = 20, 20
FILE = "lake_runs.npz"
_LABEL_LINE = re.compile(r"^run(\d\d)/test/item(\d\d)\.png\s+run(\d\d)/training/class(\d\d)\.png$")


def read_runs(source: Path) -> dict[str, np.ndarray] | None:
    """The 20 runs under `source` (all_runs.zip or all_runs/), or None when there are none.

    Returns `training` and `test` uint8 [20 runs, 20, 28, 28, 1] and `answers` int64 [20, 20]:
    test drawing j of run r shows the character of training drawing answers[r, j].
    """
    path = find(source, RUNS)
    if path is None:
        return None
    if path.suffix == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(f"{path} is not a readable zip file ({error}); download all_runs.zip again.") from None
        names = set(archive.namelist())
        read = lambda member: archive.read(member) if member in names else None  # noqa: E731
    elif path.is_dir():
        read = lambda member: (path / member).read_bytes() if (path / member).is_file() else None  # noqa: E731
    else:
        raise DataError(f"{path} is a file where the folder all_runs/ (or all_runs.zip) should be; remove it.")
    training = np.zeros((COUNT, WAYS, IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8)
    test = np.zeros_like(training)
    answers = np.zeros((COUNT, WAYS), np.int64)
    for r in range(COUNT):
        run = f"run{r + 1:02d}"
        labels = read(f"{run}/class_labels.txt")
        if labels is None:
            raise DataError(
                f"{path} lacks {run}/class_labels.txt: it is not Lake's all_runs layout (runNN/class_labels.txt, "
                "runNN/training/classNN.png, runNN/test/itemNN.png). Use the official all_runs.zip."
            )
        for line in labels.decode().strip().splitlines():
            match = _LABEL_LINE.match(line.strip())
            if match is None or int(match[1]) != r + 1 or int(match[3]) != r + 1:
                raise DataError(
                    f"{path}: {run}/class_labels.txt has a line that is not '{run}/test/itemNN.png {run}/training/classNN.png': {line!r}."
                )
            answers[r, int(match[2]) - 1] = int(match[4]) - 1
        for folder, stem, out in (("training", "class", training), ("test", "item", test)):
            for j in range(WAYS):
                member = f"{run}/{folder}/{stem}{j + 1:02d}.png"
                data = read(member)
                if data is None:
                    raise DataError(f"{path} lacks {member}; use the complete official all_runs.zip.")
                out[r, j] = decode(data, f"{path}: {member}")
    return {"training": training, "test": test, "answers": answers}


def write_runs(path: Path, runs: dict[str, np.ndarray]) -> None:
    """Save the runs atomically (a temporary file renamed into place)."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **runs)
    os.replace(partial, path)


def load_runs(path: Path) -> dict[str, np.ndarray]:
    """Runs written by `write_runs`, their shapes checked."""
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: Lake's runs are prepared with the other Omniglot files when all_runs.zip is in "
            "the source folder (`make data-omniglot`, which downloads it)."
        )
    try:
        with np.load(path) as data:
            runs = {key: data[key] for key in ("training", "test", "answers")}
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is not a prepared runs file ({error}); prepare Omniglot again.") from None
    shape = (COUNT, WAYS, IMAGE_SIZE, IMAGE_SIZE, 1)
    if runs["training"].shape != shape or runs["test"].shape != shape or runs["answers"].shape != (COUNT, WAYS):
        raise DataError(f"{path} holds arrays of the wrong shape; prepare Omniglot again.")
    return runs


def runs_episode(runs: dict[str, np.ndarray], normalise) -> EpisodeBatch:
    """The 20 runs as one batch of 20 tasks: support = the training drawings (label = class number - 1),
    query = the test drawings labelled with their answers. `normalise` maps uint8 [N, S, S, C] to the
    learner's input (the source's `normalise`)."""

    def images(array: np.ndarray) -> torch.Tensor:
        return normalise(torch.from_numpy(array.reshape(-1, *array.shape[2:]))).unflatten(0, (COUNT, WAYS))

    labels = torch.arange(WAYS).expand(COUNT, WAYS)
    return EpisodeBatch(
        Tasks(images(runs["training"]), labels.clone()), Tasks(images(runs["test"]), torch.from_numpy(runs["answers"]))
    )


def error_rate(learner, batch: EpisodeBatch) -> tuple[MeanCI, list[float]]:
    """Lake's error rate (%) over the runs, and each run's."""
    accuracy = learner.meta_test(batch).double().cpu().numpy()
    errors = [100.0 * (1.0 - a) for a in accuracy]
    return mean_ci(errors), errors


def main(argv: list[str] | None = None) -> None:
    """Meta-test a trained 20-way Omniglot run on Lake's 20 runs; write lake_runs_<checkpoint>.json into --out."""
    from conml.build import build_source_and_learner
    from conml.checkpoint import load_checkpoint

    parser = argparse.ArgumentParser(prog="python -m conml.data.images.omniglot_runs", description=main.__doc__)
    parser.add_argument("run_dir", type=Path, help="a run folder of a 20-way Omniglot run")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--runs", type=Path, help=f"the prepared {FILE} (default: beside the run's dataset cache)")
    parser.add_argument("--out", type=Path, help="folder for the result (default: the run folder)")
    args = parser.parse_args(argv)
    try:
        state = load_checkpoint(args.run_dir / "checkpoints" / f"{args.checkpoint}.pt")
        cfg = OmegaConf.create(state["config"])
        if cfg.dataset.get("name") != "omniglot":
            raise DataError(
                f"{args.run_dir} is a {cfg.dataset.get('name', 'non-image')} run; Lake's runs test Omniglot runs."
            )
        scheme = read_manifest(Path(cfg.dataset.root), "omniglot")["source_format"]
        if scheme != "official-lake":
            raise DataError(
                f"{args.run_dir} was trained on {cfg.dataset.root} ({scheme}), whose training characters include "
                "drawings of the evaluation alphabets that Lake's runs are cut from. Train the run on Lake's split "
                "(dataset.root='${paths.data_dir}/omniglot/lake'; docs/datasets_omniglot.md) and test that run."
            )
        source, learner = build_source_and_learner(cfg, torch.device("cpu"))
        learner.load_state_dict(state["learner"])
        runs = load_runs(args.runs or Path(cfg.dataset.root).parent / FILE)
        result, per_run = error_rate(learner, runs_episode(runs, source.normalise))
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        sys.exit(2)
    out = (args.out or args.run_dir) / f"lake_runs_{args.checkpoint}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"error_rate": result.as_dict(), "per_run": per_run, "run": str(args.run_dir)}, indent=2))
    print(f"Lake's 20 one-shot runs: error rate {result.mean:.2f} ± {result.ci95:.2f} % (20 runs); written to {out}")


if __name__ == "__main__":
    main()
