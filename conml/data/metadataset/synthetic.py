"""Synthetic Meta-Dataset sources (`dataset.synthetic=true`): the real class splits, no files.

For checking a machine and planning memory without the converted records; never for results. Each
source has Meta-Dataset's classes per split (from the dataset_spec.json files Meta-Dataset ships)
and every class holds the source's mean images per class, drawn by `SyntheticImages`. Two things
differ from the real sources, and both are named where results would depend on them: class sizes
are even (the real ones vary, e.g. Fungi 6 to 442), and there is no ontology (ILSVRC-2012's WordNet
nodes and Omniglot's alphabets), so ways are drawn uniformly as for the flat sources. Episode sizes
still span the same range (5 to max_ways classes, up to max_support_set_size support images).
"""

from __future__ import annotations

import numpy as np

from conml.data.images.synthetic import SyntheticImages
from conml.data.metadataset.cache import SourceCache
from conml.data.seeding import SPLITS

# Per source: classes in the train, val and test splits, and the mean images per class.
SOURCES = {
    "ilsvrc_2012": ((712, 158, 130), 1281),
    "omniglot": ((883, 81, 659), 20),
    "aircraft": ((70, 15, 15), 100),
    "cu_birds": ((140, 30, 30), 59),
    "dtd": ((33, 7, 7), 120),
    "quickdraw": ((241, 52, 52), 146163),
    "fungi": ((994, 200, 200), 64),
    "vgg_flower": ((71, 15, 16), 80),
    "traffic_sign": ((0, 0, 43), 912),
    "mscoco": ((0, 40, 40), 10750),
}


def synthetic_source(name: str, image_size: int, seed: int) -> SourceCache:
    """A source cache whose images are drawn, not read; class ids run over train, val, test in turn."""
    splits, per_class = SOURCES[name]
    total = sum(splits)
    bounds = np.cumsum([0, *splits])
    stream = list(SOURCES).index(name)
    return SourceCache(
        name=name,
        images=SyntheticImages(np.full(total, per_class), image_size, seed, stream),  # type: ignore[arg-type]  # indexed like the memory map
        starts={c: c * per_class for c in range(total)},
        counts={c: per_class for c in range(total)},
        split_classes={split: tuple(range(bounds[i], bounds[i + 1])) for i, split in enumerate(SPLITS)},
        ontology="none",
        groups={split: () for split in SPLITS},
    )
