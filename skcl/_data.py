"""Inputs of the continual estimators: validation, tensors, forward passes."""

import numpy as np
import torch
from scipy import sparse
from sklearn.utils.validation import check_is_fitted, validate_data

_PREDICT_BATCH = 256


class _DataMixin:
    """Validates inputs, turns them into tensors and forwards them."""

    def _validate_X(self, X, *, reset, y="no_validation"):
        kwargs = dict(
            accept_sparse=("csr", "csc", "coo"),
            allow_nd=True,
            dtype=(np.float32, np.float64),
            reset=reset,
        )
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, **kwargs)
        else:
            X, y = validate_data(self, X, y, **kwargs, **self._y_validation)
        if reset:
            self.input_shape_ = X.shape[1:]
        elif X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(self).__name__} "
                f"was trained on samples of shape {self.input_shape_}."
            )
        return X, y

    def _check_range(self, X):
        """Refuse float inputs beyond the largest value of the network's dtype."""
        dtype = next(self.module_.parameters()).dtype
        values = X.data if sparse.issparse(X) else np.asarray(X)
        if values.size and values.dtype.itemsize > dtype.itemsize:
            largest = torch.finfo(dtype).max
            if np.abs(values).max() > largest:
                raise ValueError(
                    f"The input holds values too large for the network's dtype "
                    f"{dtype} (largest {largest:.3g})."
                )

    def _to_tensor(self, array, dtype=None):
        if sparse.issparse(array):
            array = array.toarray()
        array = np.asarray(array)
        if not array.flags.writeable:
            array = array.copy()
        if dtype is None:
            dtype = next(self.module_.parameters()).dtype
            self._check_range(array)
        return torch.as_tensor(array, dtype=dtype).to(self.net_.device)

    def _forward(self, X, task_id=None):
        """Return the network's outputs for ``X`` as a float64 tensor on the CPU."""
        return self._forward_tensor(*self._forward_inputs(X, task_id))

    def _forward_inputs(self, X, task_id=None):
        """Validate ``X``; return it as a tensor and the outputs' mask (or None)."""
        check_is_fitted(self)
        X, _ = self._validate_X(X, reset=False)
        mask = self._predict_output_mask(task_id, X.shape[0])
        return self._to_tensor(X), mask

    def _forward_tensor(self, X, mask):
        """The outputs for the validated tensor ``X``, as :meth:`_forward`'s.

        The plug-ins' :meth:`~skcl.Plugin.infer` map the network's outputs.
        """
        task = getattr(self, "_snapshot_index", len(self.tasks_) - 1)
        training = self.module_.training
        self.module_.eval()
        try:
            with torch.no_grad():
                out = torch.cat(
                    [
                        self._forward_chunk(X[i : i + _PREDICT_BATCH], task)
                        for i in range(0, len(X), _PREDICT_BATCH)
                    ]
                )
        finally:
            self.module_.train(training)
        out = out.double().cpu()
        if mask is not None:
            out = out.masked_fill(~mask, float("-inf"))
        return out

    def _forward_chunk(self, X, task):
        """Forward a chunk zero-padded to ``_PREDICT_BATCH`` rows.

        Every chunk has the same shape, so the same kernels run and a sample's
        output does not depend on the other samples predicted with it.
        """
        n = len(X)
        if n < _PREDICT_BATCH:
            X = torch.cat([X, X.new_zeros((_PREDICT_BATCH - n, *X.shape[1:]))])
        out = self.module_(X)
        for plugin in self.net_.plugins_:
            out = plugin.infer(self.net_, X, out, task)
        return out[:n]

    def _predict_output_mask(self, task_id, n_samples):
        return None
