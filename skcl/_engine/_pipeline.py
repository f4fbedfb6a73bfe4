"""Pipelines ending in a continual estimator, fitted as ``Pipeline.fit`` would."""

import copy

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
    """Fit the pipelines' transformers on their streams, as ``Pipeline.fit`` does.

    Pipelines whose transformers have equal parameters and that get the same
    stream share one fit: the others receive copies of the fitted
    transformers and the same transformed stream. Returns, per pipeline,
    the transformed ``(X, y, task_id)`` or the exception a transformer raised.
    """
    streams, fitted = [], {}
    for pipeline, (X, y, task_id) in zip(pipelines, data, strict=True):
        steps = pipeline.steps[:-1]
        key = (fingerprint([step for _, step in steps]), id(X), id(y), id(task_id))
        if key in fitted:
            source, stream = fitted[key]
            if not isinstance(stream, Exception):
                pipeline.steps[:-1] = copy.deepcopy(source.steps[:-1])
            streams.append(stream)
            continue
        try:
            stream = (pipeline[:-1].fit_transform(X, y), y, task_id)
        except Exception as error:
            stream = error
        fitted[key] = (pipeline, stream)
        streams.append(stream)
    return streams
