"""TACOS: open tagging + clustering + contrastive scoring for instruction-data selection."""

__version__ = "0.1.0"
