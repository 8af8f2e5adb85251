"""Networks; every one can also run with a separate parameter set per task (task_batched)."""
