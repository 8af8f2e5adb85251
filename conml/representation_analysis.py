"""Task-model representations of a trained learner: do they cluster by task? (ConML Table 2, Fig. 2)

The sine-wave protocol of the paper: cut the data of each test task into subsets of N points,
learn a task model from each subset, and map it to a vector with the learner's psi. With the
task id as the label, supervised clustering scores say how well models of one task stay together
and apart from the others. e* of a task is the model learned from all its points together
(the union of its subsets); d_in is phi(e_subset, e*), d_out is phi(e*_i, e*_j) for i != j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from conml.data.episode_source import EpisodeSource
from conml.distances import Distance
from conml.episodes import EpisodeBatch, Tasks
from conml.learners.base import Adaptation, Learner
from conml.metrics import clustering_scores, mean_ci


@dataclass
class SubsetModels:
    """psi of the models of `subsets` subsets per task ([tasks * subsets, d], task-major), and e* per task."""

    vectors: Tensor
    labels: np.ndarray
    whole: Tensor


def represent(learner: Learner, tasks: Tasks, probe: Tensor | None = None) -> Tensor:
    """psi(g(D; theta)) for each task of `tasks`, in float64: distances between adapted weights are
    ~1e-5, where 1 - cos in float32 would be off by a percent."""
    with torch.no_grad():
        return (
            learner.represent(learner.adapt(tasks, Adaptation.meta_test), EpisodeBatch(tasks, tasks, probe))
            .detach()
            .double()
        )


def subset_models(
    learner: Learner,
    source: EpisodeSource,
    first: int,
    tasks: int,
    subsets: int = 10,
    points: int = 10,
    split: str = "test",
) -> SubsetModels:
    """Models of tasks first .. first+tasks-1 of `split`, each learned from `subsets` disjoint subsets of `points` points."""
    batch = source.sample(split, first, tasks, shots=subsets * points, queries=1)
    data = batch.support
    x = data.x.reshape(tasks * subsets, points, *data.x.shape[2:])
    y = data.y.reshape(tasks * subsets, points, *data.y.shape[2:])
    vectors = represent(learner, Tasks(x, y), batch.probe)
    labels = np.repeat(np.arange(first, first + tasks), subsets)
    return SubsetModels(vectors, labels, represent(learner, data, batch.probe))


def embed_2d(vectors: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """[n, d] -> [n, 2] by PCA (centred SVD) or t-SNE, for drawing task models (Fig. 2a/2d)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if method == "pca":
        centred = vectors - vectors.mean(0)
        _, _, basis = np.linalg.svd(centred, full_matrices=False)
        return centred @ basis[:2].T
    from sklearn.manifold import TSNE  # slow import, needed only here

    return TSNE(n_components=2, perplexity=min(30.0, len(vectors) - 1.0), init="pca", random_state=seed).fit_transform(
        vectors
    )


def cluster_scores(
    learner: Learner, source: EpisodeSource, tasks: int = 10, subsets: int = 10, points: int = 10, repeats: int = 10
) -> dict:
    """Silhouette / Davies-Bouldin / Calinski-Harabasz of subset models labelled by task.

    Repeat r uses test tasks r*tasks .. (r+1)*tasks-1; each score is its mean ± 95% CI over repeats.
    """
    scores = [
        clustering_scores(models.vectors.cpu().numpy(), models.labels)
        for models in (subset_models(learner, source, r * tasks, tasks, subsets, points) for r in range(repeats))
    ]
    return {name: mean_ci([s[name] for s in scores]).as_dict() for name in scores[0]}


def distance_distributions(
    learner: Learner,
    source: EpisodeSource,
    phi: Distance,
    tasks: int = 1000,
    subsets: int = 10,
    points: int = 10,
    chunk: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """d_in of every (task, subset) pair and d_out of every unordered pair of distinct tasks."""
    d_in, whole = [], []
    for first in range(0, tasks, chunk):
        models = subset_models(learner, source, first, min(chunk, tasks - first), subsets, points)
        d_in.append(phi.rows(models.vectors, models.whole.repeat_interleave(subsets, dim=0)))
        whole.append(models.whole)
    whole = torch.cat(whole)
    pairs = phi.pairs(whole, whole)
    upper = torch.triu_indices(pairs.shape[0], pairs.shape[1], offset=1)
    return torch.cat(d_in).cpu().numpy(), pairs[upper[0], upper[1]].cpu().numpy()


def analyze(learner: Learner, source: EpisodeSource, phi: Distance, tasks: int = 1000) -> dict:
    """The paper's protocol on `tasks` test tasks (1000 in the paper): clustering of 10 tasks x 10 subsets
    x 10 points, repeated on tasks // 100 groups of tasks (at least 1, at most 10); d_in / d_out over all of them."""
    repeats = max(1, min(10, tasks // 100))
    d_in, d_out = distance_distributions(learner, source, phi, tasks)
    return {
        **cluster_scores(learner, source, repeats=repeats),
        "d_in": mean_ci(d_in).as_dict(),
        "d_out": mean_ci(d_out).as_dict(),
        "protocol": {
            "tasks": 10,
            "subsets": 10,
            "points": 10,
            "repeats": repeats,
            "distance_tasks": tasks,
            "phi": phi.value,
        },
    }
