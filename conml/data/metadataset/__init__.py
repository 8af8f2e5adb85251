"""Meta-Dataset (Triantafillou et al. 2020) from the converted TFRecords users already have.

`spec` reads each source's dataset_spec.json and class splits, `records` reads one class's TFRecord
file, `cache` decodes every image once into a uint8 array with a class index, `prepare` is the
command that builds those caches (`make data-metadataset`), `sampler` draws episode compositions as
the official pipeline does, and `source` turns them into padded EpisodeBatches.
"""
