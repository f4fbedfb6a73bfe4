"""Training candidates that differ only in per-candidate scalars as one network."""

from ._fit import PER_CANDIDATE, fit_together, stacking_key

__all__ = ["PER_CANDIDATE", "fit_together", "stacking_key"]
