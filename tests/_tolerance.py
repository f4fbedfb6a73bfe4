"""Float tolerances derived from the computation compared, never picked by hand.

A value that n floating-point operations produce, each rounding with a relative
error of at most eps, differs from the same value produced in another order
(other kernels, another thread count, another BLAS) by at most about
n * eps * magnitude, where magnitude bounds the values the operations add up
(Higham, *Accuracy and Stability of Numerical Algorithms*, the gamma_n bound).
The suite's tolerances are this bound for the operations each test performs;
see the "Tolerances" section of docs/reliability.md.
"""

import numpy as np
import torch


def magnitude(values):
    """The largest absolute value of an array, tensor or number (1 if all zero)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    largest = float(np.max(np.abs(np.asarray(values, dtype=np.float64)), initial=0.0))
    return largest or 1.0


def tolerance(operations, values=1.0, dtype=torch.float64):
    """eps(dtype) * operations * magnitude(values): rounding of `operations` steps."""
    return torch.finfo(dtype).eps * operations * magnitude(values)


def training_operations(module, samples):
    """Multiply-adds of SGD: 3 per parameter per sample (forward, 2 backward)."""
    return 3 * sum(p.numel() for p in module.parameters()) * samples


def forward_operations(module):
    """Multiply-adds behind one output value: the fan-ins of the layers in turn."""
    return sum(p[0].numel() for p in module.parameters() if p.dim() > 1)
