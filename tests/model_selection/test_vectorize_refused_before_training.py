"""vectorize=True refuses a group for a reason found once its networks are built
before any candidate trains (issue 24, item 5)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

import skcl._engine._fit
import skcl._net
from skcl import ContinualClassifier
from skcl._engine._fit import runtime_reason
from skcl.model_selection import RandomizedRegimeSearchCV, RegimeSearchCV

DROPOUT = "differently seeded candidates draw their own random masks"


@pytest.fixture(scope="module")
def stream():
    X, y = load_digits(return_X_y=True)
    X = X[:120] / 16
    return np.vstack([X, X[:, ::-1]]), np.tile(y[:120], 2), np.repeat([0, 1], 120)


@pytest.fixture
def trained(monkeypatch):
    """The chunks trained, stacked (the engine's) or alone (a net's)."""
    calls = []
    for owner in (skcl._engine._fit, skcl._net):
        train_chunk = owner.train_chunk

        def counted(*args, _train_chunk=train_chunk, **kwargs):
            calls.append(args)
            return _train_chunk(*args, **kwargs)

        monkeypatch.setattr(owner, "train_chunk", counted)
    return calls


def _classifier(**params):
    torch.manual_seed(0)
    # LayerNorm: no batched kernels, so vmap cannot draw per-candidate masks.
    module = nn.Sequential(
        nn.Linear(64, 16), nn.LayerNorm(16), nn.Dropout(0.2), nn.Linear(16, 10)
    ).double()
    defaults = dict(module=module, batch_size=20, max_epochs=1, random_state=0)
    return ContinualClassifier(**{**defaults, **params})


def _search(kind, estimator, grid, **params):
    if kind == "grid":
        return RegimeSearchCV(estimator, grid, cv=2, vectorize=True, **params)
    return RandomizedRegimeSearchCV(
        estimator, grid, n_iter=2, cv=2, vectorize=True, random_state=0, **params
    )


CASES = {
    "dropout-seeds": (_classifier, {"random_state": [0, 1]}, DROPOUT),
    "differentiable": (
        lambda: _classifier(
            module=nn.Sequential(nn.Linear(64, 10)).double(),
            optimizer__differentiable=True,
        ),
        {"lr": [0.05, 0.1]},
        "differentiable",
    ),
    "pipeline": (
        lambda: make_pipeline(StandardScaler(), _classifier()),
        {"continualclassifier__random_state": [0, 1]},
        DROPOUT,
    ),
}


@pytest.mark.parametrize("kind", ["grid", "randomized"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_reason_is_raised_before_any_candidate_trains(stream, trained, kind, case):
    X, y, t = stream
    make, grid, reason = CASES[case]
    search = _search(kind, make(), grid)
    with pytest.raises(ValueError, match="could not train in a group") as raised:
        search.fit(X, y, task_id=t)
    assert reason in str(raised.value)
    assert trained == []
    assert not hasattr(search, "cv_results_")


def test_a_search_with_no_such_reason_trains_stacked(stream, trained):
    X, y, t = stream
    module = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    search = RegimeSearchCV(
        _classifier(module=module), {"lr": [0.05, 0.1]}, cv=2, vectorize=True
    ).fit(X, y, task_id=t)
    assert search.cv_results_["vectorized_group"].tolist() == [0, 0]
    assert trained


def test_runtime_reason_leaves_the_estimators_unfitted(stream, trained):
    X, y, t = stream
    estimators = [_classifier(random_state=s) for s in (0, 1)]
    params = [e.get_params() for e in estimators]
    assert runtime_reason(estimators, X, y, t).startswith(DROPOUT)
    assert not any(hasattr(e, "net_") for e in estimators)
    assert [e.get_params() for e in estimators] == params
    assert trained == []
    assert runtime_reason([_classifier(), _classifier(lr=0.1)], X, y, t) is None
