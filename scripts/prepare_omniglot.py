"""Prepare Omniglot: download the official files, or read them from a folder, into the caches training reads.

python scripts/prepare_omniglot.py [--source <folder with the official zips>] [--out data/omniglot]
(docs/datasets_omniglot.md)
"""

from conml.data.images.omniglot_prepare import main

if __name__ == "__main__":
    main()
