"""Meta-test numbers do not depend on eval.batch_size: every learner runs each test task as if alone (its own
adaptation, its own BatchNorm statistics), so a user may lower the batch size to fit memory (a 20-way 5-shot
ProtoNet cell holds 40,000 drawings in one batch of 100 tasks) and keep the protocol's numbers."""

from __future__ import annotations

import pytest
import torch

from conml.evaluate import evaluate
from tests.dataset_settings import source
from tests.learner_settings import configured
from tests.net_settings import configured_net


@pytest.mark.parametrize("learner", ["protonet", "matchingnet", "maml", "fomaml", "reptile"])
def test_the_test_accuracy_is_the_same_at_every_eval_batch_size(learner):
    tasks = source("miniimagenet", synthetic=True, ways=5, shots=1, queries=2, preload=False, verify=False)
    torch.manual_seed(0)
    head = None if learner in ("protonet", "matchingnet") else 5
    model = configured(learner, configured_net("conv4", hidden=4, out_features=head), tasks.kind).eval()
    cpu = torch.device("cpu")
    whole = evaluate(model, tasks, "test", 6, 6, cpu, progress=False)
    for batch_size in (1, 4):
        batched = evaluate(model, tasks, "test", 6, batch_size, cpu, progress=False)
        assert (batched.mean, batched.ci95) == (whole.mean, whole.ci95)
