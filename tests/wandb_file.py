"""Read an offline W&B run file (`run-<id>.wandb`) without wandb's own reader.

The file is a 7-byte header (b':W&B', magic 0xBEE1, version) followed by a LevelDB log: 32 KiB
blocks of chunks, each with a 7-byte header (CRC-32 seeded with the chunk type, length, type
FULL/FIRST/MIDDLE/LAST), holding serialized `wandb_internal_pb2.Record` protobufs.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Iterator

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a W&B run file"
    position, pending = 7, b""
    while position + HEADER.size <= len(data):
        room = BLOCK - position % BLOCK
        if room < HEADER.size:  # block trailer padding
            position += room
            continue
        checksum, length, kind = HEADER.unpack_from(data, position)
        if kind == 0 and length == 0:  # zero padding at the end of the written part
            break
        position += HEADER.size
        chunk = data[position : position + length]
        position += length
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == checksum, f"bad checksum in {path}"
        if kind == FULL:
            yield _parse(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield _parse(pending + chunk)


def _parse(payload: bytes) -> wandb_internal_pb2.Record:
    record = wandb_internal_pb2.Record()
    record.ParseFromString(payload)
    return record


def history(path: Path) -> list[dict]:
    """Every logged history row as {key: value}."""
    rows = []
    for record in read_records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
            )
    return rows


def config(path: Path) -> dict:
    """The run config as logged (top-level keys to values)."""
    merged = {}
    for record in read_records(path):
        if record.WhichOneof("record_type") == "config":
            merged.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif record.WhichOneof("record_type") == "run":
            merged.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    return merged


def run_record(path: Path):
    """The run's own record: id, project, group, job type, tags."""
    return next(r.run for r in read_records(path) if r.WhichOneof("record_type") == "run")


def summary(path: Path) -> dict:
    """The run summary as its updates leave it ({key: value}; a nested key joined with '/')."""
    merged = {}
    for record in read_records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                merged["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
    return merged


def console(path: Path) -> str:
    """What the run printed, as W&B captured it (stdout and stderr in order)."""
    return "".join(r.output_raw.line for r in read_records(path) if r.WhichOneof("record_type") == "output_raw")


def artifacts(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Every logged artifact: name -> (type, the paths of its files)."""
    return {
        r.artifact.name: (r.artifact.type, [entry.path for entry in r.artifact.manifest.contents])
        for r in read_records(path)
        if r.WhichOneof("record_type") == "artifact"
    }
