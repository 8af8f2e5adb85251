"""The ResNet-18 feature extractor of CNAPs / Simple CNAPs, with FiLM after every BatchNorm of its blocks.

Architecture and parameter names follow the CNAPs code, so its pretrained checkpoints load as they
are: a 5x5 stride-2 stem without max-pooling, four stages of two BasicBlocks (widths w, 2w, 4w, 8w;
w = 64 for the published checkpoints), global average pooling. Each block takes per-image FiLM
parameters (gamma1, beta1, gamma2, beta2), applied after its two BatchNorms; without them the
network is a plain ResNet-18. BatchNorm always uses its stored statistics (the network is kept in
eval mode, as Simple CNAPs does), so a batch may mix images of many tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from conml.checkpoint import load_data_only, numpy_globals
from conml.errors import ConfigError, DataError, UnsafeFileError
from conml.nets.grey import as_rgb

BLOCKS_PER_STAGE = (2, 2, 2, 2)
# FiLM parameters per block, in this order along the block's second axis.
FILM_PARAMETERS = ("gamma1", "beta1", "gamma2", "beta2")

# Where the published checkpoints come from, by file name.
CHECKPOINT_SOURCES = {
    "pretrained_resnet_meta_dataset.pt.tar": "the Simple CNAPs repository (github.com/peymanbateni/simple-cnaps, folder model-checkpoints/pretrained_resnets/), trained on Meta-Dataset's ILSVRC-2012 training classes",
    "pretrained_resnet.pt.tar": "the CNAPs repository (github.com/cambridge-mlg/cnaps, folder models/), trained on Meta-Dataset's ILSVRC-2012 training classes",
    "pretrained_resnet_mini_imagenet.pt.tar": "the Simple CNAPs repository (github.com/peymanbateni/simple-cnaps, folder model-checkpoints/pretrained_resnets/), trained on miniImageNet's training classes",
    "pretrained_resnet_tiered_imagenet.pt.tar": "the Simple CNAPs repository (github.com/peymanbateni/simple-cnaps, folder model-checkpoints/pretrained_resnets/), trained on tieredImageNet's training classes",
    "pretrained_resnet_mini_tiered_with_extra_classes.pt.tar": "the Simple CNAPs repository (github.com/peymanbateni/simple-cnaps, folder model-checkpoints/pretrained_resnets/), trained on ImageNet classes outside the mini/tiered test sets (the 'FETI' setting)",
}

# Checkpoints this project pretrains itself, by file name: the training run that makes each.
MADE_HERE = {"omniglot_resnet18_film.pt": "experiment=omniglot/pretrain_resnet18_film"}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, FiLM after each BatchNorm, and a residual connection."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: Tensor, film: Optional[Tensor] = None) -> Tensor:
        """x [N, C_in, H, W]; film [N, 4, C]: (gamma1, beta1, gamma2, beta2) for each image."""
        out = self.relu(_film(self.bn1(self.conv1(x)), film, 0))
        out = _film(self.bn2(self.conv2(out)), film, 2)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _film(x: Tensor, film: Optional[Tensor], first: int) -> Tensor:
    if film is None:
        return x
    return film[:, first, :, None, None] * x + film[:, first + 1, :, None, None]


class FilmResNet18(nn.Module):
    """ResNet-18 mapping images [N, 3, H, W] to features [N, 8 * width], optionally FiLM-modulated.

    Grey images [N, 1, H, W] are read as three equal channels (`conml.nets.grey`); 28-pixel ones
    (Omniglot) leave a 2 x 2 map before the pooling.

    `pretrained` is a checkpoint path (a CNAPs / Simple CNAPs `.pt.tar`, or a plain state dict such as
    `conml.nets.export_extractor` writes);
    `frozen` keeps its weights fixed (Simple CNAPs' setting) while gradients still reach the FiLM
    parameters. `activation_checkpointing` recomputes each block in the backward pass instead of
    storing its activations, which is what lets many large episodes train at once.
    """

    def __init__(
        self,
        width: int,
        pretrained: Optional[str],
        frozen: bool,
        activation_checkpointing: bool,
    ):
        super().__init__()
        if frozen and pretrained is None:
            raise ConfigError(
                "model.frozen=true needs model.pretrained (a checkpoint path): a frozen, randomly initialised feature "
                "extractor learns nothing. Set model.pretrained, or model.frozen=false to train it from scratch."
            )
        self.stage_channels = tuple(width * 2**i for i in range(len(BLOCKS_PER_STAGE)))
        self.activation_checkpointing = activation_checkpointing
        self.conv1 = nn.Conv2d(3, width, 5, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        in_channels = width
        for stage, (channels, blocks) in enumerate(zip(self.stage_channels, BLOCKS_PER_STAGE)):
            layers = [
                BasicBlock(in_channels if b == 0 else channels, channels, 2 if b == 0 and stage > 0 else 1)
                for b in range(blocks)
            ]
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layers))
            in_channels = channels
        self.out_features = in_channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if pretrained is not None:
            self.load_pretrained(Path(pretrained))
        if frozen:
            self.requires_grad_(False)
        super().train(False)

    @property
    def film_layout(self) -> tuple[tuple[int, int], ...]:
        """(channels, blocks) of each stage: the shapes of the FiLM parameters the network takes."""
        return tuple(zip(self.stage_channels, BLOCKS_PER_STAGE))

    def train(self, mode: bool = True) -> FilmResNet18:
        """Stays in eval mode: BatchNorm uses the pretrained statistics, never those of a batch."""
        return super().train(False)

    def forward(self, x: Tensor, film: Optional[list[Tensor]] = None) -> Tensor:
        """film[s] is [N, blocks, 4, channels] for stage s (one set per image), or None for no modulation."""
        x = self.relu(self.bn1(self.conv1(as_rgb(x))))
        for stage in range(len(self.stage_channels)):
            for b, block in enumerate(getattr(self, f"layer{stage + 1}")):
                params = None if film is None else film[stage][:, b]
                if self.activation_checkpointing and torch.is_grad_enabled():
                    x = checkpoint(block, x, params, use_reentrant=False)
                else:
                    x = block(x, params)
        return x.mean((2, 3))

    def load_pretrained(self, path: Path) -> None:
        origin = CHECKPOINT_SOURCES.get(
            path.name, "the CNAPs or Simple CNAPs repository (see docs/datasets_metadataset.md)"
        )
        if not path.is_file() and path.name in MADE_HERE:
            raise DataError(
                f"The pretrained ResNet-18 for Simple CNAPs is missing: {path.resolve()} is made by this project, not "
                f"downloaded. Pretrain it with `python -m conml.train {MADE_HERE[path.name]}`, then write it there with "
                f"`python -m conml.nets.export_extractor <that run's folder> {path.resolve()}` (or point "
                "model.pretrained at where you keep it)."
            )
        if not path.is_file():
            raise DataError(
                f"The pretrained ResNet-18 for Simple CNAPs is missing: put the file '{path.name}' from {origin} at "
                f"{path.resolve()} (or point model.pretrained at where you keep it). It is not downloaded automatically."
            )
        try:
            # The published files hold a dict of tensors ('state_dict' or 'resnet_dict'), which weights_only
            # reads as it is. numpy's data types are admitted too: training scripts of that era often kept a
            # metric beside the weights as a numpy scalar, and rebuilding one runs no code.
            checkpoint_data = load_data_only(
                path,
                numpy_globals(),
                holds="the pretrained ResNet-18 files hold only tensors and plain values",
                advice=f"It was altered or is not that file: obtain '{path.name}' again from {origin}.",
            )
        except UnsafeFileError:
            raise
        except Exception as error:  # noqa: BLE001 - any unreadable file is the user's damaged download
            raise DataError(
                f"{path} cannot be read as a PyTorch checkpoint ({type(error).__name__}: {error}); download it again."
            ) from None
        state = checkpoint_data
        for key in ("state_dict", "resnet_dict"):
            if isinstance(checkpoint_data, dict) and key in checkpoint_data:
                state = checkpoint_data[key]
        expected = self.state_dict()
        missing = [k for k in expected if k not in state]
        wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or wrong:
            raise DataError(
                f"{path} is not a CNAPs ResNet-18 checkpoint for width {self.stage_channels[0]}: missing {missing[:5]}, "
                f"wrong shapes {wrong[:5]}. Use one of {sorted(CHECKPOINT_SOURCES)} with model.width=64."
            )
        self.load_state_dict({k: state[k] for k in expected})
