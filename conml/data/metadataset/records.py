"""Read one class's TFRecord file with the `tfrecord` package (no TensorFlow), naming bad records.

Meta-Dataset stores each class in `<class id>.tfrecords`: a sequence of `tf.train.Example` protos
with a JPEG-encoded `image` (bytes) and an int64 `label` (the class id). The package's index utility
gives each record's byte offset; every failure (a truncated file, a length field that disagrees with
the index, an unparsable proto, a missing feature, a label of another class, an undecodable JPEG)
is reported with the file and the offset of the record, so a user knows which file to re-convert.
"""

from __future__ import annotations

import contextlib
import io
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from google.protobuf.message import DecodeError
from PIL import Image, UnidentifiedImageError
from tfrecord import example_pb2
from tfrecord.reader import tfrecord_iterator
from tfrecord.tools.tfrecord2idx import create_index

from conml.errors import DataError

# A record is framed as: uint64 length, uint32 length CRC, `length` bytes, uint32 data CRC.
FRAMING_BYTES = 16


@dataclass(frozen=True)
class RecordIndex:
    """Byte offset and framed size of every record in one file."""

    offsets: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets)


def index_records(path: Path) -> RecordIndex:
    """Offsets of the records of `path`, checked against each record's own length field."""
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; the dataset_spec.json beside it lists this class. Re-run the conversion for this source."
        )
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
        index_file = Path(scratch) / "records.tfindex"
        create_index(str(path), str(index_file))
        rows = [line.split() for line in index_file.read_text().splitlines()]
    table = np.array(rows, dtype=np.int64).reshape(-1, 2)
    index = RecordIndex(table[:, 0], table[:, 1])
    end = int(table[-1].sum()) if len(table) else 0
    if end != path.stat().st_size:
        raise _bad(path, end, "the file ends inside a record header (truncated)")
    with open(path, "rb") as handle:
        for offset, size in zip(index.offsets, index.sizes):
            handle.seek(int(offset))
            header = handle.read(8)
            length = struct.unpack("<Q", header)[0] if len(header) == 8 else -1
            if length + FRAMING_BYTES != size:
                raise _bad(
                    path,
                    int(offset),
                    f"its length field says {length} bytes but only {size - FRAMING_BYTES} follow (truncated or corrupt)",
                )
    return index


def read_class_images(
    path: Path, class_id: int, expected: int, keep: np.ndarray | None = None
) -> Iterator[tuple[int, Image.Image]]:
    """(position, decoded RGB image) for the records of one class file, in file order.

    `expected` is the record count dataset_spec.json gives; `keep` (positions) limits decoding to
    those records, the others are read but not parsed.
    """
    index = index_records(path)
    if len(index) != expected:
        raise DataError(
            f"{path} holds {len(index)} records but dataset_spec.json says class {class_id} has {expected} images. "
            "The conversion of this source did not finish or the spec belongs to another conversion; re-run it."
        )
    wanted = None if keep is None else set(int(k) for k in keep)
    records = tfrecord_iterator(str(path))
    for position, offset in enumerate(index.offsets):
        try:
            record = next(records)
        except (RuntimeError, StopIteration) as error:
            raise _bad(path, int(offset), f"it cannot be read ({error or 'end of file'})") from None
        if wanted is not None and position not in wanted:
            continue
        yield position, _decode(record, path, int(offset), class_id)


def _decode(record: memoryview, path: Path, offset: int, class_id: int) -> Image.Image:
    example = example_pb2.Example()
    try:
        example.ParseFromString(bytes(record))
    except DecodeError as error:
        raise _bad(path, offset, f"it is not a tf.train.Example ({error})") from None
    features = example.features.feature
    if "image" not in features or "label" not in features:
        raise _bad(path, offset, f"it lacks the 'image' or 'label' feature (has {sorted(features)})")
    labels = list(features["label"].int64_list.value)
    if labels != [class_id]:
        raise _bad(path, offset, f"its label is {labels}, not the class id {class_id} of the file name")
    data = features["image"].bytes_list.value
    try:
        image = Image.open(io.BytesIO(data[0]))
        image.load()
    except (IndexError, OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise _bad(path, offset, f"its image cannot be decoded ({type(error).__name__}: {error})") from None
    return image.convert("RGB")


def _bad(path: Path, offset: int, reason: str) -> DataError:
    return DataError(
        f"Corrupt Meta-Dataset record in {path} at byte offset {offset}: {reason}. Re-run Meta-Dataset's conversion "
        "for this source (or restore the file), then `make data-metadataset` again."
    )
