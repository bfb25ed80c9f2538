"""HTML evaluation reports, rendered from runs and evaluation results."""
