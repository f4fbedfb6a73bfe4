"""Training candidates that differ only in per-candidate scalars as one network."""

from ._fit import fit_together, stacking_key

__all__ = ["fit_together", "stacking_key"]
