"""PCA of network weights: meta-learned vs randomly initialised vs trained per task (a plot).

    uv run python -m conml.train dataset=same_different experiment=samediff/fomaml model=kim_conv6
    uv run python -m conml.train dataset=same_different experiment=samediff/conventional model=kim_conv6 dataset.tasks=[lines]
    uv run python scripts/weight_space_pca.py \\
        --group "MAML=outputs/same_different-fomaml-kim_conv6/*/" \\
        --group "conventional, one task=outputs/same_different-conventional-kim_conv6/*/" \\
        --random 10 --out docs/images/same_different_weight_pca.png

A run's folder is outputs/<preset name>/<date>_<time>/. Each --group is LABEL=GLOB of run folders;
every run contributes the network weights of its checkpoint (BatchNorm running statistics excluded). --random adds that many freshly initialised
networks of the first run's architecture (seeds 0..N-1). All runs must share one architecture.
Principal components come from the Gram matrix of the centred weight vectors, which needs memory
for the vectors only (a Conv6 has 8.3M weights). Coordinates are written next to the plot (.json).
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from conml.checkpoint import load_checkpoint  # noqa: E402
from conml.errors import DataError  # noqa: E402


def network_weights(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().float() for p in net.parameters()])


def run_weights(run_dir: Path, checkpoint: str) -> tuple[torch.Tensor, dict]:
    """The learner's network weights in a run's checkpoint, and the run's model config."""
    state = load_checkpoint(run_dir / "checkpoints" / f"{checkpoint}.pt")
    model_config = state["config"]["model"]
    net = instantiate(model_config)
    weights = {k.removeprefix("net."): v for k, v in state["learner"].items() if k.startswith("net.")}
    net.load_state_dict(weights, strict=False)
    missing = [name for name, _ in net.named_parameters() if name not in weights]
    if missing:
        raise DataError(
            f"{run_dir} has no network weights for {missing[:3]}...: is it a run of a learner with a `net`?"
        )
    return network_weights(net), model_config


def principal_components(vectors: torch.Tensor, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores [n, count] on the top principal components, and their explained variance ratios."""
    centred = vectors.double() - vectors.double().mean(0)
    gram = centred @ centred.T
    values, vectors_ = torch.linalg.eigh(gram)
    order = values.argsort(descending=True)[:count]
    values, vectors_ = values[order].clamp_min(0), vectors_[:, order]
    total = torch.diagonal(gram).sum()
    return vectors_ * values.sqrt(), values / total


def weight_space_pca(groups: dict[str, list[Path]], random: int, out: Path, checkpoint: str = "best") -> dict:
    labels, vectors, model_config = [], [], None
    for label, runs in groups.items():
        if not runs:
            raise DataError(f"--group {label}: no run folders matched.")
        for run in runs:
            weights, config = run_weights(run, checkpoint)
            model_config = model_config or config
            labels.append(label)
            vectors.append(weights)
    for seed in range(random):
        torch.manual_seed(seed)
        labels.append("random init")
        vectors.append(network_weights(instantiate(model_config)))
    sizes = {v.numel() for v in vectors}
    if len(sizes) > 1:
        raise DataError(f"The runs hold networks of different sizes {sorted(sizes)}; compare runs of one architecture.")
    scores, ratios = principal_components(torch.stack(vectors))

    figure, axis = plt.subplots(figsize=(5, 4))
    for label in dict.fromkeys(labels):
        rows = [i for i, name in enumerate(labels) if name == label]
        axis.scatter(scores[rows, 0], scores[rows, 1], label=f"{label} ({len(rows)})", s=30, alpha=0.8)
    axis.set_xlabel(f"PC1 ({100 * ratios[0]:.1f}% of variance)")
    axis.set_ylabel(f"PC2 ({100 * ratios[1]:.1f}% of variance)")
    axis.legend(fontsize=8)
    axis.set_title("Network weights, first two principal components", fontsize=9)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    coordinates = {
        "labels": labels,
        "runs": [str(r) for runs in groups.values() for r in runs] + [f"random seed {s}" for s in range(random)],
        "pc": scores.tolist(),
        "explained_variance_ratio": ratios.tolist(),
    }
    out.with_suffix(".json").write_text(json.dumps(coordinates, indent=2))
    return coordinates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--group", action="append", required=True, metavar="LABEL=GLOB", help="run folders to compare, by label"
    )
    parser.add_argument("--random", type=int, default=10, help="randomly initialised networks to add")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--out", type=Path, default=Path("docs/images/same_different_weight_pca.png"))
    args = parser.parse_args()
    groups = {}
    for spec in args.group:
        label, _, pattern = spec.partition("=")
        groups[label] = [Path(p) for p in sorted(glob.glob(pattern)) if Path(p, "checkpoints").is_dir()]
    weight_space_pca(groups, args.random, args.out, args.checkpoint)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
