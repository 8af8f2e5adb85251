"""Write the FiLM ResNet-18 of a finished run as the plain state dict `model.pretrained` loads.

A run's checkpoint holds the whole learner, its optimiser and the run's settings; Simple CNAPs needs
only the feature extractor, in the CNAPs file format (`{"state_dict": ...}`). The written file is
loaded back through FilmResNet18's own loader before the command returns, so a file it leaves is one
`model.pretrained` accepts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from conml.checkpoint import load_checkpoint
from conml.errors import ConfigError, UserError
from conml.nets.resnet18 import FilmResNet18

PREFIX = "net."  # where a learner keeps its backbone


def extractor_state(learner_state: dict, run: Path) -> dict:
    """The backbone's tensors of a learner's state dict, if the backbone is a FiLM ResNet-18."""
    state = {key.removeprefix(PREFIX): value for key, value in learner_state.items() if key.startswith(PREFIX)}
    width = state["conv1.weight"].shape[0] if "conv1.weight" in state else 64
    expected = FilmResNet18(width=width, pretrained=None, frozen=False, activation_checkpointing=False).state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise ConfigError(
            f"{run} holds no FiLM ResNet-18: its learner's net lacks {missing[:5]}. Export a run trained with "
            "model=resnet18_film (e.g. experiment=omniglot/pretrain_resnet18_film)."
        )
    return {key: state[key] for key in expected}


def export(run: Path, out: Path, checkpoint: str = "best") -> FilmResNet18:
    """Write the extractor of `run`'s `checkpoint` to `out`; return it as loaded back from `out`."""
    state = extractor_state(load_checkpoint(run / "checkpoints" / f"{checkpoint}.pt")["learner"], run)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, out)
    return FilmResNet18(
        width=state["conv1.weight"].shape[0], pretrained=str(out), frozen=True, activation_checkpointing=False
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conml.nets.export_extractor", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (outputs/<name>/<date>_<time>)")
    parser.add_argument("out", type=Path, help="the file to write, e.g. data/pretrained/omniglot_resnet18_film.pt")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    args = parser.parse_args(argv)
    try:
        net = export(args.run_dir, args.out, args.checkpoint)
    except UserError as error:
        print(f"\nerror: {error}\n", file=sys.stderr)
        sys.exit(2)
    print(f"wrote the {args.checkpoint} FiLM ResNet-18 (width {net.stage_channels[0]}) of {args.run_dir} to {args.out}")


if __name__ == "__main__":
    main()
