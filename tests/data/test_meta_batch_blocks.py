"""Drawing several steps' tasks in one call yields exactly the meta-batches drawn one step at a time,
from any first step and for any process's share; only sources that declare blocks get them."""

from __future__ import annotations

import pytest
import torch

from conml.data.episode_source import EpisodeSource
from conml.data.images.source import FewShotImages
from conml.data.prefetch import MetaBatches, meta_batch_stream
from conml.data.sinusoid import SineWaves
from conml.episodes import EpisodeBatch
from tests.dataset_settings import arguments, source


def tensors(batch: EpisodeBatch) -> tuple[torch.Tensor, ...]:
    return batch.support.x, batch.support.y, batch.query.x, batch.query.y


def stream(steps_per_draw: int, offset: int, count: int, first_step: int) -> list[EpisodeBatch]:
    batches = MetaBatches(
        source("sinusoid", shots=3, queries=4, seed=7), 8, offset, count, first_step, 23, steps_per_draw
    )
    return list(meta_batch_stream(batches, workers=0, pin_memory=False))


@pytest.mark.parametrize(
    "offset, count, first_step",
    [(0, 8, 0), (0, 8, 5), (2, 2, 0), (6, 2, 5)],
    ids=["from step 0", "resumed off a block boundary", "share of process 1 of 4", "share of process 3, resumed"],
)
def test_blocks_yield_the_meta_batches_of_one_draw_per_step(offset, count, first_step):
    one_per_draw = stream(1, offset, count, first_step)
    in_blocks = stream(5, offset, count, first_step)  # 23 - first_step steps: the last block is cut short
    assert len(in_blocks) == len(one_per_draw) == 23 - first_step
    for blocked, alone in zip(in_blocks, one_per_draw):
        assert blocked.num_tasks == count
        assert all(torch.equal(a, b) for a, b in zip(tensors(blocked), tensors(alone)))


class RecordedDraws(SineWaves):
    """Sine waves that record the first task of every draw."""

    def __init__(self, **settings):
        super().__init__(**settings)
        self.firsts: list[int] = []

    def sample(self, split, first, count, shots=None, queries=None):
        self.firsts.append(first)
        return super().sample(split, first, count, shots, queries)


def test_the_in_process_stream_draws_once_per_block():
    source, per_draw = RecordedDraws(**arguments("sinusoid", seed=7)), SineWaves.steps_per_draw
    last_step = 5 + 2 * per_draw + 3
    batches = MetaBatches(source, 8, 0, 8, 5, last_step, source.steps_per_draw)
    assert len(list(meta_batch_stream(batches, workers=0, pin_memory=False))) == last_step - 5
    assert source.firsts == [8 * step for step in range(5, last_step, per_draw)]


def test_only_sources_that_declare_blocks_draw_them():
    assert SineWaves.steps_per_draw > 1
    assert EpisodeSource.steps_per_draw == 1
    assert FewShotImages.steps_per_draw == 1
