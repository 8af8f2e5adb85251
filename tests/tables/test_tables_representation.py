"""Task-model clustering and d_in / d_out distributions (ConML Table 2 / Fig. 2 protocol), checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conml.build import build_source_and_learner
from conml.distances import Distance
from conml.episodes import Tasks
from conml.metrics import clustering_scores
from conml.representation_analysis import analyze, distance_distributions, represent, subset_models
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def sine_learner():
    torch.manual_seed(0)
    source, learner = build_source_and_learner(compose_config(["device=cpu"]), torch.device("cpu"))
    return source, learner.eval()


def test_clustering_scores_tell_separated_clusters_from_shuffled_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    points = rng.normal(size=(100, 3)) * 0.1 + 10.0 * np.eye(4, 3)[labels]
    tight = clustering_scores(points, labels)
    shuffled = clustering_scores(points, rng.permutation(labels))
    assert tight["silhouette"] > 0.9 and shuffled["silhouette"] < 0.1
    assert tight["davies_bouldin"] < 0.1 < shuffled["davies_bouldin"]
    assert tight["calinski_harabasz"] > 1000 * shuffled["calinski_harabasz"]


def test_subset_models_are_learned_from_disjoint_consecutive_subsets(sine_learner):
    source, learner = sine_learner
    models = subset_models(learner, source, first=3, tasks=2, subsets=4, points=5)
    assert models.vectors.shape[0] == 8 and models.labels.tolist() == [3, 3, 3, 3, 4, 4, 4, 4]
    data = source.sample("test", 3, 2, shots=20, queries=1).support
    for task in range(2):
        for subset in range(4):
            chunk = slice(5 * subset, 5 * subset + 5)
            alone = represent(learner, Tasks(data.x[task : task + 1, chunk], data.y[task : task + 1, chunk]))
            torch.testing.assert_close(models.vectors[4 * task + subset], alone[0])
        torch.testing.assert_close(
            models.whole[task], represent(learner, Tasks(data.x[task : task + 1], data.y[task : task + 1]))[0]
        )


def test_distance_distributions_by_hand(sine_learner):
    source, learner = sine_learner
    phi = Distance.cosine
    d_in, d_out = distance_distributions(learner, source, phi, tasks=5, subsets=2, points=4, chunk=2)
    assert d_in.shape == (10,) and d_out.shape == (10,)
    models = subset_models(learner, source, 0, 5, subsets=2, points=4)
    expected_in = [
        phi.rows(models.vectors[2 * t + s : 2 * t + s + 1], models.whole[t : t + 1]).item()
        for t in range(5)
        for s in range(2)
    ]
    expected_out = [
        phi.rows(models.whole[i : i + 1], models.whole[j : j + 1]).item() for i in range(5) for j in range(i + 1, 5)
    ]
    np.testing.assert_allclose(d_in, expected_in, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d_out, expected_out, rtol=1e-9, atol=1e-12)


def test_analysis_reports_the_paper_protocol(sine_learner):
    source, learner = sine_learner
    result = analyze(learner, source, Distance.cosine, tasks=300)
    assert {"silhouette", "davies_bouldin", "calinski_harabasz", "d_in", "d_out"} <= set(result)
    assert (
        result["silhouette"]["count"] == 3
        and result["d_in"]["count"] == 3000
        and result["d_out"]["count"] == 300 * 299 // 2
    )
    assert -1.0 <= result["silhouette"]["mean"] <= 1.0 and result["calinski_harabasz"]["mean"] > 0
