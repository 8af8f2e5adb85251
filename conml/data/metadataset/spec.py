"""A Meta-Dataset source as its conversion describes it: dataset_spec.json and the official class splits.

The conversion writes one `dataset_spec.json` per source in one of three forms: a flat
`DatasetSpecification` (most sources), a `BiLevelDatasetSpecification` (Omniglot: alphabets of
characters) or a `HierarchicalDatasetSpecification` (ILSVRC-2012: a WordNet DAG per split). Class ids
are contiguous per split, in TRAIN, VALID, TEST order; the class of a record is the number in its
file name. This module reads all three into one `SourceSpec`, keeping the class groups the official
sampler uses to pick related classes (alphabets, WordNet nodes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from conml.errors import DataError

# Our split names and the Split enum names the conversion writes.
SPLIT_NAMES = {"train": "TRAIN", "val": "VALID", "test": "TEST"}
# The names the official split files (dataset_conversion/splits/<source>_splits.json) use.
OFFICIAL_SPLIT_KEYS = {"train": "train", "val": "valid", "test": "test"}


@dataclass(frozen=True)
class SourceSpec:
    """One Meta-Dataset source: its classes per split, images per class and class groups.

    `groups[split]` lists the class-id groups of the split's ontology: the characters of each
    alphabet ("bilevel") or the leaves spanned by each internal WordNet node ("dag"); empty when the
    source has no ontology ("none").
    """

    name: str
    directory: Path
    file_pattern: str
    split_classes: dict[str, tuple[int, ...]]
    images_per_class: dict[int, int]
    class_names: dict[int, str]
    ontology: str
    groups: dict[str, tuple[tuple[int, ...], ...]]

    def record_path(self, class_id: int) -> Path:
        return self.directory / self.file_pattern.format(class_id)

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(sorted(c for ids in self.split_classes.values() for c in ids))


def load_spec(directory: Path) -> SourceSpec:
    """Read `<directory>/dataset_spec.json` as written by Meta-Dataset's conversion scripts."""
    path = directory / "dataset_spec.json"
    if not path.is_file():
        raise DataError(
            f"{path} does not exist. Each Meta-Dataset source folder must hold the dataset_spec.json and the "
            "<class id>.tfrecords files written by Meta-Dataset's conversion (meta_dataset.dataset_conversion."
            "convert_datasets_to_records); see docs/datasets_metadataset.md."
        )
    try:
        raw = json.loads(path.read_text())
        kind = raw["__class__"]
        reader = _READERS[kind]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataError(
            f"{path} is not a Meta-Dataset dataset specification ({type(error).__name__}: {error}). It must be "
            f"JSON with '__class__' one of {sorted(_READERS)}; re-run the conversion for this source."
        ) from None
    if raw.get("file_pattern") != "{}.tfrecords":
        raise DataError(
            f"{path}: file_pattern is {raw.get('file_pattern')!r}; only one file per class ('{{}}.tfrecords', "
            "what the conversion writes for every benchmark source) is supported."
        )
    try:
        split_classes, images, names, ontology, groups = reader(raw)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"{path} lacks or has a malformed field of a {kind} ({type(error).__name__}: {error})."
        ) from None
    missing = [c for ids in split_classes.values() for c in ids if c not in images]
    if missing:
        raise DataError(f"{path}: images_per_class has no count for class id(s) {missing[:10]}.")
    return SourceSpec(raw["name"], directory, raw["file_pattern"], split_classes, images, names, ontology, groups)


def _flat(raw: dict):
    counts = [int(raw["classes_per_split"][SPLIT_NAMES[s]]) for s in SPLIT_NAMES]
    starts = [sum(counts[:i]) for i in range(len(counts))]
    split_classes = {s: tuple(range(start, start + n)) for s, start, n in zip(SPLIT_NAMES, starts, counts)}
    return split_classes, _image_counts(raw["images_per_class"]), _int_keys(raw["class_names"]), "none", _no_groups()


def _bilevel(raw: dict):
    """Omniglot: superclasses (alphabets) are contiguous per split, classes contiguous per superclass."""
    per_superclass = _int_keys(raw["classes_per_superclass"])
    first_class, groups_of = 0, []
    for superclass in range(len(per_superclass)):
        size = int(per_superclass[superclass])
        groups_of.append(tuple(range(first_class, first_class + size)))
        first_class += size
    split_classes, groups, first_superclass = {}, {}, 0
    for split, key in SPLIT_NAMES.items():
        count = int(raw["superclasses_per_split"][key])
        groups[split] = tuple(groups_of[first_superclass : first_superclass + count])
        split_classes[split] = tuple(c for group in groups[split] for c in group)
        first_superclass += count
    return split_classes, _image_counts(raw["images_per_class"]), _int_keys(raw["class_names"]), "bilevel", groups


def _hierarchical(raw: dict):
    """ILSVRC-2012: each split has its own WordNet sub-DAG whose leaves are the split's classes."""
    names = _int_keys(raw["class_names"])
    id_of = {wn_id: class_id for class_id, wn_id in names.items()}
    split_classes, images, groups = {}, {}, {}
    for split, key in SPLIT_NAMES.items():
        children = {node["wn_id"]: list(node["children_ids"]) for node in raw["split_subgraphs"][key]}
        spans = _spanning_leaves(children)
        leaves = sorted(id_of[wn] for wn, kids in children.items() if not kids)
        split_classes[split] = tuple(leaves)
        for class_id in leaves:
            images[class_id] = int(raw["images_per_class"][key][names[class_id]])
        groups[split] = tuple(
            tuple(sorted(id_of[leaf] for leaf in spans[wn])) for wn in sorted(children) if children[wn]
        )
    return split_classes, images, names, "dag", groups


def _spanning_leaves(children: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    """The leaves below every node of a DAG given as {node: children}."""
    spans: dict[str, frozenset[str]] = {}

    def visit(node: str) -> frozenset[str]:
        if node not in spans:
            kids = children[node]
            spans[node] = frozenset({node}) if not kids else frozenset().union(*(visit(k) for k in kids))
        return spans[node]

    for node in children:
        visit(node)
    return spans


def _image_counts(raw: dict) -> dict[int, int]:
    counts = {}
    for class_id, count in raw.items():
        if isinstance(count, dict):
            raise ValueError("example-level pools (train/test images within a class) are not supported")
        counts[int(class_id)] = int(count)
    return counts


def _int_keys(raw: dict) -> dict[int, str]:
    return {int(key): value for key, value in raw.items()}


def _no_groups() -> dict[str, tuple]:
    return {split: () for split in SPLIT_NAMES}


_READERS = {
    "DatasetSpecification": _flat,
    "BiLevelDatasetSpecification": _bilevel,
    "HierarchicalDatasetSpecification": _hierarchical,
}


# Sources whose split the conversion fixes in code rather than in a <source>_splits.json, and the
# size of each split in Meta-Dataset (the dataset_specs/<source>_dataset_spec.json it ships agree).
SPLITS_IN_CODE = {
    "omniglot": ("alphabets", {"train": 25, "val": 5, "test": 20}),
    "ilsvrc_2012": ("classes", {"train": 712, "val": 158, "test": 130}),
}


def check_splits(spec: SourceSpec, splits_folder: Path) -> str:
    """Check the spec's classes per split against Meta-Dataset's; returns what was checked, in words.

    Most sources have a split file `<splits_folder>/<source>_splits.json` (class names per split).
    Omniglot and ILSVRC-2012 have none: their split is fixed in the conversion code. For those the
    spec Meta-Dataset ships beside its split files (`../dataset_specs/<source>_dataset_spec.json`)
    gives the class names where it is present; otherwise only the sizes of the splits are checked.
    """
    split_file = splits_folder / f"{spec.name}_splits.json"
    if spec.name not in SPLITS_IN_CODE:
        if not split_file.is_file():
            raise DataError(
                f"--splits {splits_folder} has no {split_file.name}, so the {spec.name} split cannot be checked. Point "
                "--splits at Meta-Dataset's meta_dataset/dataset_conversion/splits (or the conversion's $SPLITS folder), "
                f"or leave {spec.name} out of this run with --sources."
            )
        check_official_splits(spec, split_file)
        return f"class names of every split match {split_file}"
    shipped = splits_folder.parent / "dataset_specs" / f"{spec.name}_dataset_spec.json"
    if shipped.is_file():
        _compare_class_names(spec, _official_spec_names(shipped), shipped)
        return f"no split file exists for {spec.name} (its split is fixed in the conversion code); class names of every split match {shipped}"
    unit, sizes = SPLITS_IN_CODE[spec.name]
    ours = {
        split: len(spec.groups[split]) if unit == "alphabets" else len(spec.split_classes[split]) for split in sizes
    }
    if ours != sizes:
        raise DataError(
            f"{spec.directory / 'dataset_spec.json'} has {_sizes(ours)} {unit} per train/val/test split, but Meta-Dataset's "
            f"{spec.name} split has {_sizes(sizes)}. Re-run Meta-Dataset's conversion for {spec.name} unchanged, so that "
            "results compare with published ones."
        )
    return (
        f"no split file exists for {spec.name} (its split is fixed in the conversion code), and {shipped} is not there: "
        f"checked the split sizes only ({_sizes(sizes)} {unit}); point --splits at meta_dataset/dataset_conversion/splits "
        "of a Meta-Dataset clone to compare class names too"
    )


def check_official_splits(spec: SourceSpec, splits_file: Path) -> None:
    """Check that the spec's classes per split are those of Meta-Dataset's official split file.

    The split files (`meta_dataset/dataset_conversion/splits/<source>_splits.json`) list class names
    per split; records converted with other splits would silently change the benchmark.
    """
    try:
        official = json.loads(splits_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"Cannot read the class splits {splits_file} ({type(error).__name__}: {error}).") from None
    _compare_class_names(
        spec, {split: set(official.get(key, [])) for split, key in OFFICIAL_SPLIT_KEYS.items()}, splits_file
    )


def _official_spec_names(path: Path) -> dict[str, set[str]]:
    """Class names per split of a dataset_spec.json that Meta-Dataset ships."""
    try:
        raw = json.loads(path.read_text())
        split_classes, _, names, _, _ = _READERS[raw["__class__"]](raw)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"Cannot read the Meta-Dataset specification {path} ({type(error).__name__}: {error})."
        ) from None
    return {split: {names[c] for c in ids} for split, ids in split_classes.items()}


def _compare_class_names(spec: SourceSpec, official: dict[str, set[str]], reference: Path) -> None:
    for split in OFFICIAL_SPLIT_KEYS:
        ours, theirs = {spec.class_names[c] for c in spec.split_classes[split]}, official[split]
        if ours != theirs:
            extra, lacking = sorted(ours - theirs)[:5], sorted(theirs - ours)[:5]
            raise DataError(
                f"The {split} classes of {spec.directory / 'dataset_spec.json'} differ from the official split "
                f"{reference} (in the spec only: {extra}; in the official split only: {lacking}). Re-run Meta-Dataset's "
                "conversion with its shipped split files so that results compare with published ones."
            )


def _sizes(per_split: dict[str, int]) -> str:
    return "/".join(str(per_split[split]) for split in ("train", "val", "test"))
