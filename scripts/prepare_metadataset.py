"""Prepare Meta-Dataset: index and cache the converted TFRecords once (see docs/datasets_metadataset.md).

    python scripts/prepare_metadataset.py --records <RECORDS> [--out $CONML_DATA/metadataset] [--image-size 84] [--workers N]

--out defaults to metadataset/ under $CONML_DATA, or under data/ when it is unset: where training looks.
"""

from conml.data.metadataset.prepare import main

if __name__ == "__main__":
    main()
