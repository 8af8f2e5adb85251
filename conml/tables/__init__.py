"""Paper tables: the paper's numbers per cell, runs aggregated over seeds, Markdown / LaTeX / JSON output."""
