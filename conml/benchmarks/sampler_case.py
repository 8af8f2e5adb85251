"""B6: episode sampling, and its share of a meta-training step.

Image episodes come from a synthetic miniImageNet-format cache written to a temporary folder:
the project keeps the split on the device as uint8 and gathers, augments and normalises there;
the peer decodes each image from a PNG file per episode, as a torch Dataset over an image folder
does (PNG, being lossless, lets the gate check that both draw exactly the same episodes). Sine-wave
tasks are drawn by the project's counter-based CPU sampler, several training steps' worth per call
as the trainer draws them, and reported per step. Each sampler is set against the
project's MAML meta-iteration on the same episodes, with the target that sampling takes under 5 %
of a training step.
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conml.benchmarks.gates import GateResult
from conml.benchmarks.maml_peers import ProjectMAML, meta_iteration
from conml.benchmarks.results import CaseResult, Target
from conml.benchmarks.scale import BenchRun
from conml.benchmarks.setups import MAMLSetup, network, sine_setup
from conml.benchmarks.timing import Timing, Variant, measure
from conml.data.images.augment import Augmentation
from conml.data.images.cache import SPLITS, CacheWriter
from conml.data.images.sampler import draw_episode
from conml.data.images.source import IMAGENET_MEAN, IMAGENET_STD, FewShotImages
from conml.data.prefetch import MetaBatches, meta_batch_stream
from conml.data.seeding import episode_rng
from conml.data.sinusoid import SineWaves
from conml.episodes import EpisodeBatch, Tasks

CLASSES, PER_CLASS = 20, 30
# Target: drawing a meta-batch takes under this share of a training step (%).
SHARE_LIMIT = 5.0


def write_cache(root: Path, image_size: int) -> list[Path]:
    """A miniImageNet-format cache of noise images, plus the train images as PNG files."""
    rng = np.random.default_rng(0)
    writer = CacheWriter(root, "miniimagenet", "synthetic", image_size)
    train = rng.integers(0, 256, size=(CLASSES * PER_CLASS, image_size, image_size, 3), dtype=np.uint8)
    for split in SPLITS:
        images = train if split == "train" else rng.integers(0, 256, size=train.shape, dtype=np.uint8)
        writer.write_split(split, [f"{split}{c}" for c in range(CLASSES)], [PER_CLASS] * CLASSES, iter(images))
    writer.finish()
    files = []
    for index, pixels in enumerate(train):
        files.append(root / "png" / f"{index}.png")
        files[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(files[-1])
    return files


class PngEpisodes:
    """The same episodes, decoded image by image from PNG files (the Dataset-over-a-folder way)."""

    def __init__(self, source: FewShotImages, files: list[Path]):
        self.source, self.files = source, files
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def sample(self, first: int, count: int) -> EpisodeBatch:
        source, shape = self.source, self.source.train_shape
        indices, labels = [], []
        for index in range(first, first + count):
            episode = draw_episode(
                episode_rng(source.seed, "train", index), source.offsets["train"], source.splits["train"].counts, shape
            )
            indices += [*episode.support, *episode.query]
            labels.append(np.concatenate([episode.support_labels, episode.query_labels]))
        x = torch.stack([self._load(i) for i in indices]).to(source.device).unflatten(0, (count, -1))
        y = torch.from_numpy(np.stack(labels)).to(source.device)
        cut = shape.ways * shape.shots
        return EpisodeBatch(Tasks(x[:, :cut], y[:, :cut]), Tasks(x[:, cut:], y[:, cut:]))

    def _load(self, index: int) -> torch.Tensor:
        """Decode, then ToTensor and Normalize, one image at a time (a Dataset's __getitem__)."""
        pixels = (
            torch.from_numpy(np.array(Image.open(self.files[index]).convert("RGB"))).permute(2, 0, 1).float().div(255.0)
        )
        return (pixels - self.mean) / self.std


def _sampling(sample, tasks: int):
    step = [0]

    def run() -> None:
        sample(step[0] * tasks, tasks)
        step[0] += 1

    return run


def image_case(setup: MAMLSetup, run: BenchRun, root: Path, files: list[Path]) -> CaseResult:
    device = run.device
    settings = dict(
        ways=setup.ways,
        shots=setup.shots,
        queries=setup.queries,
        train_ways=None,
        train_shots=None,
        train_queries=None,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        device=str(device),
        preload=True,
        verify=False,
        seed=0,
        synthetic=False,
        rotations=1,
    )
    plain = FewShotImages(str(root), "miniimagenet", augmentation=None, **settings)
    # lee2019's flip and jitter strengths (configs/dataset/augmentation/lee2019.yaml), padding scaled to the image.
    jitter = dict(flip=True, brightness=0.4, contrast=0.4, saturation=0.4)
    augmented = FewShotImages(
        str(root),
        "miniimagenet",
        augmentation=Augmentation(crop_padding=setup.image_size // 10, **jitter),
        **settings,
    )
    png = PngEpisodes(plain, files)
    ours, theirs = plain.sample("train", 0, setup.tasks), png.sample(0, setup.tasks)
    gates = [_counts_gate(ours, setup), _same_episodes_gate(ours, theirs)]
    label = f"miniImageNet format, {setup.ways}w{setup.shots}s q{setup.queries} B={setup.tasks} {setup.image_size}px"
    result = CaseResult("B6", "episode sampling", label, "preloaded uint8 on device", gates)
    if not result.passed:
        return result
    net = network(setup).to(device)
    variants = [
        Variant(
            "preloaded uint8 on device",
            _sampling(lambda first, count: plain.sample("train", first, count), setup.tasks),
        ),
        Variant(
            "  + per-image augmentation",
            _sampling(lambda first, count: augmented.sample("train", first, count), setup.tasks),
        ),
        Variant("PNG decode per episode", _sampling(png.sample, setup.tasks)),
        Variant(
            "MAML meta-iteration (project)",
            meta_iteration(ProjectMAML(copy.deepcopy(net), setup), plain.sample("train", 0, setup.tasks)),
        ),
    ]
    result.timings, failures = measure(variants, run)
    result.notes += failures
    _share_target(result, "MAML meta-iteration (project)")
    return result


def _counts_gate(batch: EpisodeBatch, setup: MAMLSetup) -> GateResult:
    """Every task has `shots` support and `queries` query examples of each of its `ways` labels."""
    wrong = 0
    for tasks, per_class in ((batch.support, setup.shots), (batch.query, setup.queries)):
        counts = torch.nn.functional.one_hot(tasks.y, setup.ways).sum(1)
        wrong += int((counts != per_class).any(1).sum())
    return GateResult("class/shot counts as specified (tasks wrong)", float(wrong), 0.0)


def _same_episodes_gate(ours: EpisodeBatch, theirs: EpisodeBatch) -> GateResult:
    """The PNG peer yields the project's images and labels (max pixel difference; inf if labels differ)."""
    labels = torch.equal(ours.support.y, theirs.support.y) and torch.equal(ours.query.y, theirs.query.y)
    error = max(
        (a - b).abs().max().item() for a, b in ((ours.support.x, theirs.support.x), (ours.query.x, theirs.query.x))
    )
    return GateResult("PNG peer = project episodes (max pixel difference)", error if labels else float("inf"), 1e-5)


def sine_case(run: BenchRun, tasks: int) -> CaseResult:
    """The counter-based sampler as training draws it: `SineWaves.steps_per_draw` steps' tasks per
    call, timed per call and reported per step, beside one call per step."""
    setup = sine_setup(tasks)
    source = SineWaves(
        shots=setup.shots,
        queries=setup.queries,
        amplitude=(0.1, 5.0),
        phase=(0.0, math.pi),
        x_range=(-5.0, 5.0),
        seed=0,
    )
    per_draw = source.steps_per_draw
    batch = source.sample("train", 0, tasks)
    subject, one_per_step = f"sampler per step ({per_draw} steps per call)", "  one call per step"
    result = CaseResult(
        "B6",
        "episode sampling",
        f"sine waves {setup.shots}-shot q{setup.queries} B={tasks}",
        subject,
        [_one_at_a_time_gate(source, batch), _blocks_gate(source, tasks, per_draw)],
    )
    if not result.passed:
        return result
    step, default_step = "MAML meta-iteration (project, 1-40-40-1)", "  + ConML (the default experiment)"
    with_conml = replace(setup, conml=True)
    variants = [
        Variant(subject, _training_draws(source, tasks, per_draw, run.device)),
        Variant(
            one_per_step, _sampling(lambda first, count: source.sample("train", first, count).to(run.device), tasks)
        ),
        Variant(step, meta_iteration(ProjectMAML(network(setup).to(run.device), setup), batch.to(run.device))),
        Variant(
            default_step,
            meta_iteration(ProjectMAML(network(with_conml).to(run.device), with_conml), batch.to(run.device)),
        ),
    ]
    result.timings, failures = measure(variants, run)
    result.notes += failures
    if subject in result.timings:
        block = result.timings[subject]
        result.timings[subject] = _per_step(block, per_draw)
        result.notes.append(
            f"one call draws {per_draw} steps' meta-batches: {block.median_ms:.2f} ms, {block.ops} ATen ops"
        )
    _share_target(result, step)
    default_share = _share(result, default_step)
    if default_share is not None:
        result.notes.append(f"with ConML on, as `make train` runs, sampling takes {default_share:.1f}% of a step")
    return result


def _training_draws(source: SineWaves, tasks: int, per_draw: int, device: torch.device):
    """One call of the trainer's in-process stream: `per_draw` steps' meta-batches, each moved to `device`."""
    block = [0]

    def run() -> None:
        first = block[0] * per_draw
        for meta_batch in meta_batch_stream(
            MetaBatches(source, tasks, 0, tasks, first, first + per_draw, per_draw), 0, False
        ):
            meta_batch.to(device)
        block[0] += 1

    return run


def _per_step(block: Timing, steps: int) -> Timing:
    """A block's timing per step it draws (peak memory stays the block's: it is held at once)."""
    return replace(
        block,
        median_ms=block.median_ms / steps,
        p10_ms=block.p10_ms / steps,
        p90_ms=block.p90_ms / steps,
        ops=None if block.ops is None else round(block.ops / steps),
    )


def _one_at_a_time_gate(source: SineWaves, batch: EpisodeBatch) -> GateResult:
    """Drawn as a meta-batch, every task is the one its index gives alone (max difference, bit for bit)."""
    alone = [_tensors(source.sample("train", index, 1)) for index in range(batch.num_tasks)]
    error = max((torch.cat(pieces) - whole).abs().max().item() for whole, pieces in zip(_tensors(batch), zip(*alone)))
    return GateResult("meta-batch = tasks drawn one at a time (max difference)", error, 0.0)


def _blocks_gate(source: SineWaves, tasks: int, per_draw: int) -> GateResult:
    """Drawn several steps per call, from a step off a call boundary, every meta-batch is the one drawn
    alone (max difference, bit for bit)."""
    first, last = 3, 3 + 2 * per_draw + 1
    streams = [
        meta_batch_stream(MetaBatches(source, tasks, 0, tasks, first, last, steps), 0, False) for steps in (per_draw, 1)
    ]
    error = max(
        (a - b).abs().max().item()
        for blocked, alone in zip(*streams)
        for a, b in zip(_tensors(blocked), _tensors(alone))
    )
    return GateResult(f"{per_draw} steps per call = one call per step (max difference)", error, 0.0)


def _tensors(episodes: EpisodeBatch) -> tuple[torch.Tensor, ...]:
    return episodes.support.x, episodes.support.y, episodes.query.x, episodes.query.y


def _share(result: CaseResult, step: str) -> float | None:
    """Sampling's share (%) of a training step, sampling + `step`; None if either was not timed."""
    if result.subject not in result.timings or step not in result.timings:
        return None
    sampler, iteration = result.timings[result.subject].median_ms, result.timings[step].median_ms
    return 100 * sampler / (sampler + iteration)


def _share_target(result: CaseResult, step: str) -> None:
    share = _share(result, step)
    if share is not None:
        result.targets.append(
            Target("sampling's share of a training step (sampling + meta-iteration)", share, SHARE_LIMIT)
        )


def b6(run: BenchRun) -> list[CaseResult]:
    scale = run.scale
    base = MAMLSetup(
        tasks=1, shots=1, queries=scale.queries, image_size=scale.image_size, inner_steps=scale.inner_steps
    )
    grid = (
        [(scale.meta_batches[1], 1)]
        if scale.name == "small"
        else [(b, s) for b in scale.meta_batches for s in scale.shots]
    )
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "miniimagenet"
        files = write_cache(root, scale.image_size)
        results = [image_case(replace(base, tasks=b, shots=s), run, root, files) for b, s in grid]
    return results + [sine_case(run, scale.meta_batches[1])]
