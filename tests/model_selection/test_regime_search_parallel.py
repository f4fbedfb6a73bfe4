"""The search gives the same results sequentially, on a process pool and on Dask.

The Dask cluster runs worker processes (``processes=True``); fits in threads
of one process equal them too (``tests/test_randomness.py``).
"""

import joblib
import numpy as np
import pytest
import torch

from skcl.model_selection import RegimeSearchCV

distributed = pytest.importorskip("distributed")


def threads_scorer(estimator, X, y):
    return torch.get_num_threads()


@pytest.fixture(scope="module")
def dask_client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_n_jobs_and_dask_give_identical_results(
    tiny_stream, make_classifier, dask_client
):
    X, y, t = tiny_stream
    grid = {"lr": [0.02, 0.1], "module__dropout": [0.0, 0.3], "lr_decay": [0.5]}
    scoring = {"acc": "average_accuracy", "bwt": "backward_transfer"}

    def search(n_jobs=None):
        return RegimeSearchCV(
            make_classifier(), grid, scoring=scoring, refit="acc", cv=2, n_jobs=n_jobs
        ).fit(X, y, task_id=t)

    reference = search(n_jobs=1)
    with joblib.parallel_backend("dask"):
        on_dask = search()
    for other in [search(n_jobs=2), on_dask]:
        assert other.cv_results_["params"] == reference.cv_results_["params"]
        for key, value in reference.cv_results_.items():
            if key.startswith(("split", "mean_test", "rank")):
                np.testing.assert_array_equal(other.cv_results_[key], value)
        assert other.best_params_ == reference.best_params_


def test_threads_are_divided_among_workers(tiny_stream, make_classifier, dask_client):
    X, y, t = tiny_stream
    torch.set_num_threads(4)
    expected = max(1, min(4, joblib.cpu_count() // 2))

    def threads(**params):
        search = RegimeSearchCV(
            make_classifier(),
            {"lr": [0.1, 0.2]},
            cv=2,
            scoring=threads_scorer,
            **params,
        ).fit(X, y, task_id=t)
        return set(search.cv_results_["split0_test_score"])

    assert threads(n_jobs=2) == {expected}
    assert threads(n_jobs=2, n_threads=2) == {2}
    with joblib.parallel_backend("dask"):
        assert threads() == {expected}
    assert torch.get_num_threads() == 4
