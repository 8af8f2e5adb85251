"""What the README tells a new user to type works as written: the multirun layout it describes,
`wandb login` before `wandb sync`, `python -m conml.evaluate`, the `conml-train` command and its shell
completion, and uv when `make setup` installed it outside PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conml.multirun_jobs import SWEPT_FILE, job_folder

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_multirun_layout_is_the_one_the_config_makes(tmp_path):
    train = (ROOT / "configs" / "train.yaml").read_text()
    assert "dir: ${paths.output_dir}/multirun/${now:%Y-%m-%d_%H-%M-%S}" in train
    assert "subdir: ${job_folder:${hydra.job.num},${name},${hydra.overrides.task},${hydra.sweep.dir}}" in train
    assert "`outputs/multirun/<date>_<time>/<job number>_<name>_<swept values>/`" in README
    (tmp_path / SWEPT_FILE).write_text('["conml.lam", "seed"]')
    assert (
        job_folder(3, "sinusoid-maml-conml_on", ["conml.lam=0.1", "seed=1"], str(tmp_path))
        == "3_sinusoid-maml-conml_on_conml.lam=0.1,seed=1"
    )
    assert "`3_sinusoid-maml-conml_on_conml.lam=0.1,seed=1`" in README


def test_wandb_login_comes_before_wandb_sync():
    assert "uv run wandb login" in README and README.index("uv run wandb login") < README.index("uv run wandb sync")


def test_the_evaluate_command_and_its_options_exist(capsys):
    from conml.evaluate import main

    assert "`python -m conml.evaluate <run folder>`" in README
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    for option in ("--checkpoint", "--episodes", "--shots"):
        assert option in usage and f"`{option}" in README


def test_conml_train_is_a_console_command_with_shell_completion():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "[project.scripts]" in pyproject and '\nconml-train = "conml.train:main"\n' in pyproject
    assert "`conml-train`" in README and 'eval "$(conml-train -sc install=bash)"' in README
    command = Path(sys.executable).parent / "conml-train"
    if not command.exists():
        pytest.skip("the environment was installed before conml-train existed: run `make setup`")
    finished = subprocess.run([command, "-sc", "install=bash"], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "complete -o nospace -o default -F hydra_bash_completion conml-train" in finished.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_setup_says_how_to_reach_uv_when_it_is_not_on_path():
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed where make setup puts it")
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "uv").exists())
    if shutil.which("uv", path=path) or not (shutil.which("make", path=path) and shutil.which("bash", path=path)):
        pytest.skip("uv shares its folder with make or bash here, so it cannot be taken off PATH alone")
    finished = subprocess.run(
        ["make", "-s", "setup", f"UV={uv}"],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    assert f'export PATH="{Path(uv).parent}:$PATH"' in finished.stderr
    assert 'export PATH="$HOME/.local/bin:$PATH"' in README
