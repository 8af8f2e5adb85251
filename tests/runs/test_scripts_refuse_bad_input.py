"""Every script refuses bad input in one paragraph: exit status 2, `error: ...` on stderr, no traceback,
and nothing written. The commands run in this process where that is the same code path (`main(argv)`);
one runs as its own process to check the real entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conml.checks.settings import check_data_dir
from conml.data.images.cache import read_manifest
from conml.errors import DataError
from tests.conftest import TINY, compose_config
from tests.train_cli import checksums, train_cli

ROOT = Path(__file__).resolve().parents[2]


def assert_refused(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    assert err.strip().startswith("error: ") and len([line for line in err.splitlines() if line.strip()]) == 1, err
    for text in expected:
        assert text in err, err


def exit_code(main, *arguments) -> int:
    with pytest.raises(SystemExit) as stop:
        main(*arguments)
    return stop.value.code


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def test_table_seeds_that_are_not_integers(tmp_path):
    result = subprocess.run(
        [sys.executable, "scripts/table.py", "aggregate", "table2", str(tmp_path), "--seeds", "abc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert_refused(result.returncode, result.stderr, "--seeds abc", "--seeds 0,1,2")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "option, expected",
    [
        (["--episodes", "0"], "--episodes 0 is out of range"),
        (["--shots", "-1"], "--shots -1 is out of range"),
        (["--shots", "5", "0"], "--shots 5 0 is out of range"),
    ],
)
def test_evaluate_refuses_counts_below_one(option, expected, tmp_path, capsys):
    from conml.evaluate import main

    code = exit_code(main, [str(tmp_path), "--device", "cpu", *option])
    assert_refused(code, capsys.readouterr().err, expected, "at least 1")
    assert not list(tmp_path.iterdir())


def image_preparation(dataset):
    from conml.data.images.prepare import main

    return lambda argv: main(dataset, argv)


def metadataset_preparation(argv):
    from conml.data.metadataset.prepare import main

    main(argv)


def same_different_preparation(argv):
    from scripts.prepare_same_different import main

    main(argv)


PREPARATIONS = {
    "miniimagenet": (image_preparation("miniimagenet"), ["--source", "{source}", "--out"]),
    "tieredimagenet": (image_preparation("tieredimagenet"), ["--source", "{source}", "--out"]),
    "metadataset": (metadataset_preparation, ["--records", "{source}", "--out"]),
    "same_different": (same_different_preparation, ["--workers", "1", "--root"]),
}


@pytest.mark.parametrize("inside", [False, True], ids=["out is a file", "out is inside a file"])
@pytest.mark.parametrize("name", PREPARATIONS)
def test_preparation_into_a_file_is_refused_before_anything_is_written(name, inside, a_file, tmp_path, capsys):
    main, arguments = PREPARATIONS[name]
    source = tmp_path / "download"
    source.mkdir()
    out = a_file / "prepared" if inside else a_file
    before = checksums(tmp_path)
    code = exit_code(main, [argument.format(source=source) for argument in arguments] + [str(out)])
    what = f"cannot be made: {a_file} is a file" if inside else "is a file, not a folder"
    assert_refused(code, capsys.readouterr().err, f"{out} {what}")
    assert checksums(tmp_path) == before


def test_preparation_names_conml_data_when_it_is_the_file(a_file, tmp_path, capsys, monkeypatch):
    from conml.data.images.prepare import main

    monkeypatch.setenv("CONML_DATA", str(a_file))
    (tmp_path / "download").mkdir()
    code = exit_code(main, "miniimagenet", ["--source", str(tmp_path / "download")])
    assert_refused(code, capsys.readouterr().err, f"{a_file} is a file", "it is CONML_DATA")


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--tasks", "nope"], ["--tasks=['nope'] must be distinct names", "regular"]),
        (["--tasks", "naturalistic", "--objects-root", "{absent}"], ["{absent}", "Point --objects-root at"]),
    ],
    ids=["unknown task", "missing objects folder"],
)
def test_same_different_preparation_names_its_options(arguments, expected, tmp_path, capsys):
    from scripts.prepare_same_different import main

    absent = tmp_path / "objects"
    root = tmp_path / "cache"
    code = exit_code(main, [a.format(absent=absent) for a in arguments] + ["--root", str(root), "--workers", "1"])
    err = capsys.readouterr().err
    assert_refused(code, err, *(text.format(absent=absent) for text in expected))
    assert "dataset." not in err and not root.exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "# @package _global_\npaths:\n  data_dir: [unclosed\nlogger:\n  entity: me\n",
            ["is not valid YAML at line 4, column 7", "expected ',' or ']'"],
        ),
        ("paths:\n  data_dir: /datasets\n", ["does not start with the line `# @package _global_`", "(paths)"]),
        ("# machine settings\n# @package _global_\nseed: 1\n", ["`# @package _global_`", "before any other comment"]),
    ],
    ids=["invalid YAML", "no package header", "header after a comment"],
)
def test_a_broken_local_config_is_named_with_the_fix(text, expected, tmp_path, monkeypatch):
    """configs/local/default.yaml, merged into every run, is written by hand; here a stand-in for it, which
    Hydra also finds (on its search path), as it would find the real one."""
    import conml.train

    (tmp_path / "search" / "local").mkdir(parents=True)
    local = tmp_path / "search" / "local" / "default.yaml"
    local.write_text(text)
    monkeypatch.setattr(conml.train, "LOCAL_CONFIG", local)
    run_dir = tmp_path / "run"
    finished = train_cli(*TINY, f"hydra.searchpath=[file://{tmp_path / 'search'}]", f"hydra.run.dir={run_dir}")
    assert_refused(finished.code, finished.err, str(local), *expected)
    assert not run_dir.exists()


def test_conml_data_that_is_a_file_is_named(a_file, tmp_path, monkeypatch):
    monkeypatch.setenv("CONML_DATA", str(a_file))
    run_dir = tmp_path / "run"
    finished = train_cli(*TINY, "dataset=miniimagenet", "learner=protonet", "model=conv4", f"hydra.run.dir={run_dir}")
    assert_refused(finished.code, finished.err, f"CONML_DATA={a_file} is a file, not a folder", "unset it")
    assert not run_dir.exists()
    check_data_dir(compose_config(TINY))  # a run that reads nothing under it (sine waves) is not refused
    with pytest.raises(DataError, match=re.escape(f"cannot be read: {a_file} is a file, not a folder")):
        read_manifest(a_file / "miniimagenet", "miniimagenet")  # dataset.root set to a folder inside a file
