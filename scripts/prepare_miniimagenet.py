"""Prepare miniimagenet: convert the downloaded files into the cache training reads (see docs/datasets_imagenet.md).

python scripts/prepare_miniimagenet.py --source <download folder> [--out data/miniimagenet] [--workers N]
"""

from conml.data.images.prepare import main

if __name__ == "__main__":
    main("miniimagenet")
