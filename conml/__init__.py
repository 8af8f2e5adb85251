"""conml: Learning to Learn with Contrastive Meta-Objective, as one composable codebase."""

__version__ = "0.1.0"
