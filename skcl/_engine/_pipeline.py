"""Pipelines ending in a continual estimator, fitted as ``Pipeline.fit`` would."""

import numpy as np
from sklearn.pipeline import Pipeline

from .._params import fingerprint


def is_continual_pipeline(estimator):
    """Whether ``estimator`` is a Pipeline whose last step is a continual estimator."""
    from .._base import _ContinualEstimator

    return isinstance(estimator, Pipeline) and isinstance(
        estimator.steps[-1][1], _ContinualEstimator
    )


def pipeline_key(pipeline, final_key):
    """The stacking key of ``pipeline``: its final step's and its transformers'."""
    key = {f"{pipeline.steps[-1][0]}__{k}": v for k, v in final_key.items()}
    key.update((name, fingerprint(step)) for name, step in pipeline.steps[:-1])
    return key


def transform_streams(pipelines, data):
    """Fit each pipeline's transformers on its stream, as ``Pipeline.fit`` does.

    Returns, per pipeline, the transformed ``(X, y, task_id)`` (the same
    object for pipelines whose outputs are equal) or the exception a
    transformer raised.
    """
    streams, seen = [], []
    for pipeline, (X, y, task_id) in zip(pipelines, data, strict=True):
        try:
            Xt = pipeline[:-1].fit_transform(X, y)
        except Exception as error:
            streams.append(error)
            continue
        same = next(
            (s for s in seen if s[0].shape == Xt.shape and np.array_equal(s[0], Xt)),
            None,
        )
        if same is None or same[1] is not y or same[2] is not task_id:
            same = (Xt, y, task_id)
            seen.append(same)
        streams.append(same)
    return streams
