"""Downloaded dataset pickles, pretrained weights and checkpoints are read as data: nothing in them runs.

Each crafted file below holds an object whose pickle calls os.system to create a file; the test first
shows that an ordinary unpickler does run it, then that the project's loaders refuse the file, name
it, and leave no such file behind.
"""

from __future__ import annotations

import os
import pickle
import random
import shlex
import zipfile

import numpy as np
import pytest
import torch

from conml.checkpoint import load_checkpoint, restore_rng_states
from conml.config import WandbMode
from conml.data.images.miniimagenet import prepare_miniimagenet
from conml.data.images.pickles import load_pickle
from conml.data.images.tieredimagenet import prepare_tieredimagenet
from conml.distances import Distance
from conml.errors import UnsafeFileError
from conml.train import run
from tests.conftest import TINY, compose_config
from tests.images_fixture import write_mini_pickles, write_tiered_pickles
from tests.net_settings import configured_net

CLASSES = {"train": 3, "val": 2, "test": 2}
PER_CLASS = 4


class Payload:
    """Unpickles as os.system('touch <marker>')."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def assert_live(path, marker, unpickle) -> None:
    """The crafted file does run its command under an ordinary unpickler (then the marker is removed)."""
    unpickle(path)
    assert marker.exists(), "the crafted file should run its command when loaded unsafely"
    marker.unlink()


def assert_refused(error, path, marker) -> None:
    message = str(error.value)
    assert str(path) in message and "system" in message and "refused before anything in it ran" in message
    assert "\n" not in message.strip()  # one paragraph
    assert not marker.exists(), "loading the crafted file ran its command"


# -- dataset pickles ---------------------------------------------------------------------------


def crafted_dataset(dataset, source, marker, protocol):
    """A download with one crafted pickle; returns (the crafted file, the preparation function)."""
    if dataset == "miniimagenet":
        write_mini_pickles(source, CLASSES, PER_CLASS)
        path, content = source / "mini-imagenet-cache-train.pkl", {"image_data": Payload(marker), "class_dict": {}}
        prepare = prepare_miniimagenet
    elif dataset == "tieredimagenet labels":
        write_tiered_pickles(source, CLASSES, PER_CLASS)
        path, content = source / "train_labels.pkl", {"label_specific": np.zeros(3), "x": Payload(marker)}
        prepare = prepare_tieredimagenet
    else:
        write_tiered_pickles(source, CLASSES, PER_CLASS)
        path, content = source / "train_images_png.pkl", [np.zeros(4, np.uint8), Payload(marker)]
        prepare = prepare_tieredimagenet
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    return path, prepare


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("dataset", ["miniimagenet", "tieredimagenet labels", "tieredimagenet images"])
def test_a_crafted_dataset_pickle_is_refused_and_runs_nothing(tmp_path, dataset, protocol):
    marker = tmp_path / "ran"
    path, prepare = crafted_dataset(dataset, tmp_path / "raw", marker, protocol)
    assert_live(path, marker, lambda p: pickle.loads(p.read_bytes(), encoding="latin1"))
    with pytest.raises(UnsafeFileError) as error:
        prepare(tmp_path / "raw", tmp_path / "cache")
    assert_refused(error, path, marker)
    assert "posix.system" in str(error.value) and "docs/datasets_imagenet.md" in str(error.value)


# A numpy uint8 array [1, 2, 3] as Python 2 with numpy 1 pickled it (protocol 2): numpy.core names,
# the dtype and the raw data as byte strings.
PYTHON2_ARRAY = (
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02U\x01bq\x03\x87q\x04Rq\x05"
    b"(K\x01K\x03\x85q\x06cnumpy\ndtype\nq\x07U\x02u1q\x08K\x00K\x01\x87q\tRq\n(K\x03U\x01|q\x0bNNNJ\xff\xff\xff\xff"
    b"J\xff\xff\xff\xffK\x00tq\x0cb\x89U\x03\x01\x02\x03q\rtq\x0eb."
)


def test_the_data_the_known_layouts_hold_still_loads(tmp_path):
    path = tmp_path / "data.pkl"
    path.write_bytes(PYTHON2_ARRAY)
    np.testing.assert_array_equal(load_pickle(path), np.array([1, 2, 3], np.uint8))
    content = {
        "image_data": np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3),
        "class_dict": {"n01": [0, 1]},
        "label_specific_str": ["a", b"b"],
        "scalars": [np.int64(3), np.float32(0.5), 2**70, 1.5, None, True],
        "ragged": np.array([np.zeros(2, np.uint8), np.ones(3, np.uint8)], dtype=object),
        "empty": b"",
    }
    for protocol in range(6):
        path.write_bytes(pickle.dumps(content, protocol=protocol))
        loaded = load_pickle(path)
        assert loaded.keys() == content.keys() and loaded["class_dict"] == content["class_dict"]
        np.testing.assert_array_equal(loaded["image_data"], content["image_data"])
        assert loaded["scalars"] == content["scalars"] and loaded["empty"] == b""
        assert [a.tolist() for a in loaded["ragged"]] == [[0, 0], [1, 1, 1]]


def test_bytes_are_rebuilt_only_through_latin_1(tmp_path):
    """_codecs.encode is admitted for the bytes of protocol 0-2 pickles, with that one codec."""
    path = tmp_path / "data.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(UnsafeFileError, match="_codecs.encode"):
        load_pickle(path)


# -- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("groups", [[], ["+scheduler=step"]], ids=["no scheduler", "StepLR"])
def test_a_checkpoint_written_by_this_code_loads_as_data_and_resumes(tmp_path, groups):
    run(compose_config([*TINY, *groups, "trainer.steps=4"]), tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    state, trusted = load_checkpoint(last), torch.load(last, map_location="cpu", weights_only=False)
    assert state.keys() == trusted.keys() and state["config"] == trusted["config"]
    assert isinstance(state["config"]["conml"]["phi"], Distance) and isinstance(
        state["config"]["logger"]["mode"], WandbMode
    )
    assert all(torch.equal(state["learner"][k], trusted["learner"][k]) for k in trusted["learner"])
    restore_rng_states(state["rng"])
    draws = (random.random(), np.random.random(), torch.rand(1).item())
    restore_rng_states(trusted["rng"])
    assert draws == (random.random(), np.random.random(), torch.rand(1).item())
    resumed = run(compose_config([*TINY, *groups, "trainer.steps=6", f"resume={tmp_path}"]), tmp_path)
    assert resumed["steps"] == 6


def test_numpy_state_written_under_numpy_1_or_2_loads(tmp_path):
    """numpy 2 names its array builders numpy._core, numpy 1 numpy.core: a checkpoint of either era loads."""
    state = {"numpy": np.random.get_state(), "metric": np.float64(2.5)}
    torch.save(state, tmp_path / "numpy2.pt")
    with zipfile.ZipFile(tmp_path / "numpy2.pt") as new, zipfile.ZipFile(tmp_path / "numpy1.pt", "w") as old:
        for record in new.infolist():
            data = new.read(record)
            old.writestr(
                record.filename,
                data.replace(b"numpy._core.", b"numpy.core.") if record.filename.endswith("data.pkl") else data,
            )
    for name in ("numpy2.pt", "numpy1.pt"):
        loaded = load_checkpoint(tmp_path / name)
        assert loaded["numpy"][0] == state["numpy"][0] and np.array_equal(loaded["numpy"][1], state["numpy"][1])
        assert loaded["metric"] == 2.5


@pytest.mark.parametrize("zipped", [True, False], ids=["zip format", "legacy format"])
def test_a_crafted_checkpoint_is_refused_on_resume_and_runs_nothing(tmp_path, zipped):
    run_dir, marker = tmp_path / "run", tmp_path / "ran"
    run(compose_config(TINY), run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, map_location="cpu", weights_only=False)
    torch.save({**state, "best": Payload(marker)}, last, _use_new_zipfile_serialization=zipped)
    assert_live(last, marker, lambda p: torch.load(p, map_location="cpu", weights_only=False))
    with pytest.raises(UnsafeFileError) as error:
        run(compose_config([*TINY, f"resume={run_dir}"]), run_dir)
    assert_refused(error, last, marker)
    assert "resume from another checkpoint" in str(error.value)


# -- pretrained weights ------------------------------------------------------------------------

WIDTH = 8


def test_pretrained_weights_load_as_data_and_crafted_ones_run_nothing(tmp_path):
    reference = configured_net("resnet18_film", width=WIDTH, pretrained=None, frozen=False)
    path, marker = tmp_path / "pretrained_resnet_mini_imagenet.pt.tar", tmp_path / "ran"
    # As training scripts of the time saved them: a metric as a numpy scalar beside the weights.
    torch.save({"state_dict": reference.state_dict(), "epoch": 90, "arch": "resnet18", "best": np.float64(0.7)}, path)
    loaded = configured_net("resnet18_film", width=WIDTH, pretrained=str(path))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()))

    torch.save({"state_dict": reference.state_dict(), "extra": Payload(marker)}, path)
    assert_live(path, marker, lambda p: torch.load(p, map_location="cpu", weights_only=False))
    with pytest.raises(UnsafeFileError) as error:
        configured_net("resnet18_film", width=WIDTH, pretrained=str(path))
    assert_refused(error, path, marker)
    assert "github.com/peymanbateni/simple-cnaps" in str(error.value)
