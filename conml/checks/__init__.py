"""Every check that can refuse a run, before anything is written, one kind per module:

- `command_line`: the overrides, before Hydra composes them (misspelled keys, sweep values that cannot be composed);
- `local_config`: this machine's configs/local/default.yaml;
- `settings`: the composed config alone (known keys, ranges, combinations, the data folder);
- `targets`: every `_target_` group against the signature of what it builds;
- `fit`: the built model against one validation task.
"""
