"""A tiny Meta-Dataset in the real converted layout: per source a dataset_spec.json and one
`<class id>.tfrecords` file per class holding tf.train.Examples with JPEG `image` bytes and an int64
`label`, written with the `tfrecord` package exactly as the conversion lays them out.

Three sources cover the three kinds of spec: aircraft (flat), omniglot (alphabets) and ilsvrc_2012
(a WordNet DAG per split, one leaf with two parents). Each class's images share a colour, so a
learner can do better than chance.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tfrecord.writer import TFRecordWriter

from conml.data.metadataset.prepare import prepare

SOURCES = ["aircraft", "omniglot", "ilsvrc_2012"]
# The set encoder halves images five times, so 32 pixels is the smallest size it takes.
IMAGE_SIZE = 32

# aircraft: classes per split and images per class (imbalanced on purpose).
AIRCRAFT_CLASSES = {"TRAIN": 7, "VALID": 5, "TEST": 5}
# omniglot: alphabets per split and characters per alphabet.
OMNIGLOT_SUPERCLASSES = {"TRAIN": 2, "VALID": 1, "TEST": 1}
OMNIGLOT_CHARACTERS = [5, 6, 5, 5]
# ilsvrc_2012: per split, internal node -> children; leaves are the classes.
ILSVRC_GRAPHS = {
    "TRAIN": {"n00": ["n01", "n02"], "n01": ["n10", "n11", "n12", "n13", "n14"], "n02": ["n14", "n15", "n16", "n17"]},
    "VALID": {"n03": ["n20", "n21", "n22", "n23", "n24"]},
    "TEST": {"n04": ["n30", "n31", "n32", "n33", "n34"]},
}


def jpeg(colour: np.ndarray, rng: np.random.Generator, size: int = 24) -> bytes:
    pixels = np.clip(colour + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_class(path: Path, class_id: int, count: int, rng: np.random.Generator) -> None:
    colour = rng.uniform(30, 225, 3)
    writer = TFRecordWriter(str(path))
    for _ in range(count):
        writer.write({"image": (jpeg(colour, rng), "byte"), "label": (class_id, "int")})
    writer.close()


def write_source(root: Path, spec: dict, counts: dict[int, int], rng: np.random.Generator) -> Path:
    folder = root / spec["name"]
    folder.mkdir(parents=True, exist_ok=True)
    for class_id, count in counts.items():
        write_class(folder / f"{class_id}.tfrecords", class_id, count, rng)
    (folder / "dataset_spec.json").write_text(
        json.dumps({**spec, "path": str(folder), "file_pattern": "{}.tfrecords"}, indent=2)
    )
    return folder


def write_records(root: Path, seed: int = 0) -> Path:
    """Write the three sources under `root`; returns `root`."""
    rng = np.random.default_rng(seed)
    total = sum(AIRCRAFT_CLASSES.values())
    counts = {c: int(rng.integers(6, 13)) for c in range(total)}
    write_source(
        root,
        {
            "__class__": "DatasetSpecification",
            "name": "aircraft",
            "classes_per_split": AIRCRAFT_CLASSES,
            "images_per_class": {str(c): n for c, n in counts.items()},
            "class_names": {str(c): f"plane-{c}" for c in counts},
        },
        counts,
        rng,
    )

    counts = {c: int(rng.integers(4, 8)) for c in range(sum(OMNIGLOT_CHARACTERS))}
    write_source(
        root,
        {
            "__class__": "BiLevelDatasetSpecification",
            "name": "omniglot",
            "superclasses_per_split": OMNIGLOT_SUPERCLASSES,
            "classes_per_superclass": {str(i): n for i, n in enumerate(OMNIGLOT_CHARACTERS)},
            "images_per_class": {str(c): n for c, n in counts.items()},
            "superclass_names": {str(i): f"alphabet-{i}" for i in range(len(OMNIGLOT_CHARACTERS))},
            "class_names": {str(c): f"character-{c}" for c in counts},
        },
        counts,
        rng,
    )

    leaves = [sorted({k for kids in graph.values() for k in kids} - set(graph)) for graph in ILSVRC_GRAPHS.values()]
    wn_ids = [wn for split_leaves in leaves for wn in split_leaves]
    counts = {c: int(rng.integers(6, 11)) for c in range(len(wn_ids))}
    subgraphs, images = {}, {}
    for split, graph in ILSVRC_GRAPHS.items():
        nodes = set(graph) | {k for kids in graph.values() for k in kids}
        parents = {n: sorted(p for p, kids in graph.items() if n in kids) for n in nodes}
        subgraphs[split] = [
            {"wn_id": n, "words": n, "children_ids": sorted(graph.get(n, [])), "parents_ids": parents[n]}
            for n in sorted(nodes)
        ]
        spans = _spans(graph)
        images[split] = {n: sum(counts[wn_ids.index(leaf)] for leaf in spans[n]) for n in nodes}
    write_source(
        root,
        {
            "__class__": "HierarchicalDatasetSpecification",
            "name": "ilsvrc_2012",
            "split_subgraphs": subgraphs,
            "images_per_class": images,
            "class_names": {str(c): wn for c, wn in enumerate(wn_ids)},
        },
        counts,
        rng,
    )
    return root


def write_official_splits(path: Path, split_names: dict[str, list[str]]) -> Path:
    path.write_text(json.dumps(split_names))
    return path


def _spans(graph: dict[str, list[str]]) -> dict[str, set[str]]:
    def leaves(node: str) -> set[str]:
        return {node} if node not in graph else set().union(*(leaves(k) for k in graph[node]))

    nodes = set(graph) | {k for kids in graph.values() for k in kids}
    return {n: leaves(n) for n in nodes}


@pytest.fixture(scope="session")
def metadataset_records(tmp_path_factory) -> Path:
    """The converted records of the three sources (read-only: tests that damage files copy them first)."""
    return write_records(tmp_path_factory.mktemp("metadataset") / "records")


@pytest.fixture(scope="session")
def metadataset_cache(metadataset_records, tmp_path_factory) -> Path:
    """The cache `make data-metadataset` would build from them, at IMAGE_SIZE pixels."""
    root = tmp_path_factory.mktemp("metadataset_cache")
    prepare(metadataset_records, root, IMAGE_SIZE, SOURCES, None, 1, None)
    return root
