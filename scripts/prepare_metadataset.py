"""Prepare Meta-Dataset: index and cache the converted TFRecords once (see docs/datasets_metadataset.md).

    python scripts/prepare_metadataset.py --records <RECORDS> [--out data/metadataset] [--image-size 84] [--workers N]
"""

from conml.data.metadataset.prepare import main

if __name__ == "__main__":
    main()
