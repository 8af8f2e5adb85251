"""Networks; any of them runs with a separate parameter set per task (task_functional), the ones that
declare it on the grouped fast path (task_batched)."""
