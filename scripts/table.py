"""Re-run a paper table (Hydra multirun over its presets and seeds) and set it beside the paper's numbers.

    python scripts/table.py run table2 --seeds 0,1,2 trainer.steps=2000
    python scripts/table.py aggregate table2 outputs/tables/table2/<date>_<time>
    python scripts/table.py export table5 outputs/table5_toy docs/results/table5_toy
    python scripts/table.py list

See docs/sweeps.md and conml/tables/cli.py.
"""

import sys

from conml.tables.cli import main

if __name__ == "__main__":
    sys.exit(main())
