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
