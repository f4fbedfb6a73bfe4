"""Deep equality of nested test states: tensors, arrays, modules, estimators."""

import numpy as np
import torch


def same(a, b):
    """Whether two nested structures hold equal values (tensors included)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, torch.nn.Module):
        return same(a.state_dict(), b.state_dict())
    if isinstance(a, np.random.RandomState):
        return same(a.get_state(), b.get_state())
    if isinstance(a, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same(u, v) for u, v in zip(a, b))
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if hasattr(a, "get_params"):
        return type(a) is type(b) and same(a.get_params(), b.get_params())
    return type(a) is type(b) and a == b
