"""Prepare tieredimagenet: convert the downloaded files into the cache training reads (see docs/datasets_imagenet.md).

python scripts/prepare_tieredimagenet.py --source <download folder> [--out data/tieredimagenet] [--workers N]
"""

from conml.data.images.prepare import main

if __name__ == "__main__":
    main("tieredimagenet")
