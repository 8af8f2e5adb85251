"""Seed-addressed randomness: every episode has its own generator, derived from (seed, split, index).

Episodes therefore do not depend on batch size, worker count, device or what ran before, which is
what makes validation and test sets fixed and replayable, and resumed runs identical.
"""

from __future__ import annotations

import numpy as np
import torch

SPLITS = ("train", "val", "test")


def episode_seed(seed: int, split: str, index: int) -> int:
    """A 63-bit seed for episode `index` of `split` under the run seed `seed`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; expected one of {list(SPLITS)}")
    state = np.random.SeedSequence([seed, SPLITS.index(split), index]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def episode_generator(seed: int, split: str, index: int) -> torch.Generator:
    """A CPU torch generator for one episode (CPU so that episodes agree across machines)."""
    return torch.Generator().manual_seed(episode_seed(seed, split, index))


def episode_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """A numpy generator for one episode, for samplers that index numpy arrays."""
    return np.random.default_rng(episode_seed(seed, split, index))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def episode_uniforms(seed: int, split: str, first: int, count: int, draws: int) -> np.ndarray:
    """U[0, 1) numbers [count, draws]: row i holds draws 0..draws-1 of episode `first + i`.

    A counter-based generator (splitmix64 of a per-episode key plus the draw number), so a whole
    meta-batch is drawn in a few array operations while every number stays a pure function of
    (seed, split, episode, draw): it depends on no batch size, worker or device, and draw j of an
    episode is the same however many draws are asked for.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; expected one of {list(SPLITS)}")
    with np.errstate(over="ignore"):
        run = _splitmix64(
            np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) + _GOLDEN * np.uint64(SPLITS.index(split) + 1)
        )
        keys = _splitmix64(run ^ np.arange(first, first + count, dtype=np.uint64))
        counters = np.arange(1, draws + 1, dtype=np.uint64) * _GOLDEN
        bits = _splitmix64(keys[:, None] + counters[None, :])
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
