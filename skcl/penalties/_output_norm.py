"""MAS importance from per-sample gradients of the output norm."""

from ._per_sample import check_inputs, per_sample_gradient_means


def output_norm_gradients(module, X, *, batch_size=1024, output_transform=None):
    """MAS importance: mean absolute per-sample gradient of the squared output norm.

    ``Omega_j = 1/N sum_n |d ||f(x_n)||_2^2 / d theta_j|`` (Aljundi et al.,
    "Memory Aware Synapses", ECCV 2018, eq. 3-4), the absolute value taken of
    each sample's gradient, not of the gradient of a batch mean. No labels
    are needed. Eval mode, chunking and the fast path are as in
    :func:`squared_gradients`.

    Parameters
    ----------
    module : torch.nn.Module
        The network; ``f(x)`` is its output (logits for a classifier).
    X : array-like or Tensor
        Inputs, samples along the first axis.
    batch_size : int or None, default=1024
        Samples per chunk: it bounds memory and does not change the result.
        None processes all samples at once.
    output_transform : callable or None, default=None
        Applied to the module's output first.

    Returns
    -------
    dict of str to Tensor
        For each trainable parameter, by name, the importance shaped like the
        parameter, on its device.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skcl.penalties import output_norm_gradients
    >>> net = nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(1.0), net.bias.zero_()
    >>> X = torch.tensor([[1.0, -1.0], [1.0, 1.0]])  # f = 0 and 2: grads 0 and 4 * x
    >>> output_norm_gradients(net, X)["weight"]
    tensor([[2., 2.]])
    """
    X = check_inputs(module, X, batch_size, output_transform)
    return per_sample_gradient_means(
        module,
        X,
        lambda z, start: 2 * z[None],
        reduction="abs",
        batch_size=batch_size,
        output_transform=output_transform,
    )
