"""What `python -m conml.evaluate` says: the --device flag as it is spelt, the support size in the progress bar."""

from __future__ import annotations

import pytest
import torch

import conml.evaluate as evaluate_module
from conml.data.episode_source import EpisodeSource
from conml.episodes import EpisodeBatch, Tasks
from conml.evaluate import evaluate, main
from conml.task_kind import CLASSIFICATION


def test_cuda_on_a_machine_without_it_names_the_flag(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        main(["outputs/some_run", "--device", "cuda"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --device: cuda was requested but this machine has no usable CUDA device" in err
    assert "use --device cpu or --device auto" in err and "device=cpu" not in err.replace("--device cpu", "")
    assert "Traceback" not in err


def test_an_unknown_device_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["outputs/some_run", "--device", "gpu0"])
    assert exit_info.value.code == 2
    assert (
        "argument --device: 'gpu0' is not a device torch knows; use --device auto, cpu, cuda or cuda:N"
        in capsys.readouterr().err
    )


class VariableShotSource(EpisodeSource):
    """Episodes whose support size varies from task to task (Meta-Dataset's): shots is None."""

    kind = CLASSIFICATION
    shots = None

    def sample(self, split, first, count, shots=None, queries=None) -> EpisodeBatch:
        tasks = Tasks(torch.zeros(count, 2, 1), torch.zeros(count, 2, dtype=torch.long))
        return EpisodeBatch(tasks, tasks)


class Constant(torch.nn.Module):
    def meta_test(self, batch: EpisodeBatch) -> torch.Tensor:
        return torch.full((batch.support.x.shape[0],), 0.5)


@pytest.mark.parametrize("shots, label", [(None, "test variable-shot"), (5, "test 5-shot")])
def test_progress_bar_names_the_support_size(monkeypatch, shots, label):
    labels = []

    def recording_progress(iterable, desc, **settings):
        labels.append(desc)
        return iterable

    monkeypatch.setattr(evaluate_module, "tracked", recording_progress)
    result = evaluate(
        Constant(), VariableShotSource(), "test", episodes=6, batch_size=4, device=torch.device("cpu"), shots=shots
    )
    assert labels == [label] and result.mean == pytest.approx(50.0)
