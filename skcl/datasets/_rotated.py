import math

import numpy as np
from scipy import ndimage
from sklearn.utils import check_random_state

from ._validation import _check_array_X_y, _check_dtype, _check_int


def _image_shape(images, image_shape):
    if images.ndim == 3:
        if image_shape is not None and tuple(image_shape) != images.shape[1:]:
            raise ValueError(
                f"image_shape={tuple(image_shape)} does not match images of "
                f"shape {images.shape[1:]}."
            )
        return images.shape[1:]
    n_features = images.shape[1]
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"images have {n_features} features, not a square number; "
                "pass image_shape=(height, width)."
            )
        return side, side
    image_shape = tuple(image_shape)
    if len(image_shape) != 2 or math.prod(image_shape) != n_features:
        raise ValueError(
            f"image_shape must be (height, width) with height * width == "
            f"{n_features} (the number of features), got {image_shape}."
        )
    return image_shape


def _angles(n_tasks, angles, step, random_state):
    if angles is None or isinstance(angles, str):
        if isinstance(angles, str) and angles != "random":
            raise ValueError(
                f'angles must be None, "random" or a list of degrees, got {angles!r}.'
            )
        n_tasks = 10 if n_tasks is None else _check_int(n_tasks, "n_tasks")
        if angles == "random":
            return check_random_state(random_state).uniform(0.0, 180.0, n_tasks)
        return float(step) * np.arange(n_tasks)
    angles = np.asarray(angles, dtype=float)
    if angles.ndim != 1 or angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError(
            f"angles must be a non-empty 1-d list of finite degrees, got {angles!r}."
        )
    if n_tasks is not None and _check_int(n_tasks, "n_tasks") != angles.size:
        raise ValueError(
            f"n_tasks={n_tasks} does not match the {angles.size} given angles; "
            "pass one of them."
        )
    return angles


def make_rotated_stream(
    images,
    y,
    n_tasks=None,
    *,
    angles=None,
    step=10.0,
    image_shape=None,
    order=1,
    dtype=None,
    random_state=None,
):
    """Build a domain-incremental stream by rotating the images per task.

    Every task holds all the images rotated counter-clockwise about their
    centre by the task's angle (Rotated MNIST); the labels stay the same.
    Pixels that come from outside the image are 0. The tasks are concatenated:
    task 0's rows first, then task 1's, and so on.

    Parameters
    ----------
    images : array-like of shape (n_samples, height, width) or \
            (n_samples, height * width)
        Grey-scale images, as a stack or flattened.
    y : array-like of shape (n_samples,)
        Targets, repeated for every task.
    n_tasks : int, default=None
        Number of tasks; 10 when neither it nor a list of ``angles`` is given.
    angles : None, "random" or array-like of float, default=None
        The angle of each task in degrees. None rotates task ``t`` by
        ``step * t`` (the Stable SGD protocol: 0, 10, 20, ... degrees);
        "random" draws each task's angle uniformly in [0, 180) from
        ``random_state`` (the GEM protocol).
    step : float, default=10.0
        Degrees between consecutive tasks when ``angles=None``.
    image_shape : tuple of (int, int), default=None
        ``(height, width)`` of flattened images; square images are inferred.
    order : int, default=1
        Spline interpolation order of :func:`scipy.ndimage.rotate` (1 is
        bilinear; higher orders can overshoot the input range).
    dtype : numpy dtype, default=None
        Data type of the returned images (default: that of ``images``). The
        stream takes ``n_tasks`` times the memory of ``images``; a smaller
        dtype such as ``np.float16`` halves float32's.
    random_state : int, RandomState instance or None, default=None
        Seeds the angles when ``angles="random"``; otherwise unused.

    Returns
    -------
    X_stream : ndarray of shape (n_tasks * n_samples, ...)
        The rotated images, task by task, in the shape of ``images``.
    y_stream : ndarray of shape (n_tasks * n_samples,)
        The targets, ``y`` repeated ``n_tasks`` times.
    task_id : ndarray of shape (n_tasks * n_samples,)
        The task of each row, ints ``0 .. n_tasks - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import make_rotated_stream
    >>> images = np.arange(8.0).reshape(2, 4)  # two flat 2x2 images
    >>> Xs, ys, task_id = make_rotated_stream(images, [0, 1], angles=[0, 90])
    >>> Xs[task_id == 1][0].reshape(2, 2)
    array([[1., 3.],
           [0., 2.]])
    """
    images, y = _check_array_X_y(
        images,
        y,
        X_name="images",
        ndims=(2, 3),
        expected="(n_samples, height, width) or (n_samples, height * width)",
    )
    shape = _image_shape(images, image_shape)
    angles = _angles(n_tasks, angles, step, random_state)
    order = _check_int(order, "order", min_value=0)
    if order > 5:
        raise ValueError(f"order must be in 0 .. 5, got {order}.")
    dtype = _check_dtype(dtype, images.dtype)
    n_samples = images.shape[0]
    stack = images.reshape(n_samples, *shape)
    X_stream = np.empty((angles.size * n_samples, *shape), dtype=dtype)
    for t, angle in enumerate(angles):
        ndimage.rotate(
            stack,
            angle,
            axes=(1, 2),
            reshape=False,
            output=X_stream[t * n_samples : (t + 1) * n_samples],
            order=order,
            mode="constant",
            cval=0.0,
        )
    X_stream = X_stream.reshape(angles.size * n_samples, *images.shape[1:])
    y_stream = np.tile(y, angles.size)
    task_id = np.repeat(np.arange(angles.size), n_samples)
    return X_stream, y_stream, task_id
