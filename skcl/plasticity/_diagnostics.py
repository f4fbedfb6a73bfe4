"""Why a network stopped learning: its features' rank, dead units, weights, gradient."""

import numpy as np
import torch

from ._units import hidden_features, layer_tuples


def srank(features, delta=0.01):
    """Effective rank of a feature matrix: ``srank_delta`` (Kumar et al., 2021).

    The smallest ``k`` with ``sum_{i<=k} sigma_i >= (1 - delta) sum_i sigma_i``,
    ``sigma`` the singular values in decreasing order; 0 for a zero matrix.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        The features of a batch (one row per input).
    delta : float, default=0.01
        The fraction of the singular values' sum left out.

    Returns
    -------
    rank : int

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.metrics import srank
    >>> srank(np.diag([10.0, 1.0, 0.001]))
    2
    """
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}.")
    sigma = torch.linalg.svdvals(torch.as_tensor(np.asarray(features, dtype=float)))
    total = sigma.sum()
    if total == 0:
        return 0
    reached = torch.cumsum(sigma, 0) >= (1 - delta) * total
    return int(torch.nonzero(reached)[0, 0]) + 1


def network_diagnostics(net, X, y=None, *, delta=0.01, owner="the diagnostics"):
    """The diagnostics of ``net`` (an estimator's ``net_``) on tensors ``X``, ``y``.

    Returns a dict: ``srank`` of the last hidden layer's features,
    ``dead_fraction`` of the hidden features zero on every row (dropout
    off), ``weight_magnitude`` (the mean absolute trainable parameter) and,
    with encoded targets ``y``, ``gradient_norm`` (the L2 norm of the task
    loss's gradient, eval mode).
    """
    module = net.module_
    params = list(module.parameters())
    layers = layer_tuples(net, owner, crelu=True)
    with torch.no_grad():
        features = hidden_features(layers, params, X)
        dead = sum(int((h == 0).all(0).sum()) for h in features)
        width = sum(h.shape[1] for h in features)
        trainable = [p.detach().flatten() for p in params if p.requires_grad]
        flat = torch.cat(trainable)
    found = {
        "srank": srank(features[-1].double().cpu(), delta),
        "dead_fraction": dead / width,
        "weight_magnitude": float(flat.abs().mean()),
    }
    if y is not None:
        training = module.training
        module.eval()
        try:
            loss = net.criterion_(net.infer_task(X), y)
            grads = torch.autograd.grad(
                loss, [p for p in params if p.requires_grad], allow_unused=True
            )
        finally:
            module.train(training)
        squares = [g.double().square().sum() for g in grads if g is not None]
        found["gradient_norm"] = float(torch.stack(squares).sum().sqrt())
    return found
