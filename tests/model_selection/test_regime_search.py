import inspect
import re
from typing import ClassVar

import numpy as np
import pytest
import sklearn
import torch
from joblib import cpu_count
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    RandomizedSearchCV,
    cross_validate,
)
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcl import ContinualClassifier, ContinualRegressor
from skcl.metrics import (
    MissingTaskIdError,
    accuracy_matrix,
    average_accuracy,
    backward_transfer,
    forgetting,
    get_continual_scorer,
    learning_accuracy,
)
from skcl.model_selection import (
    RandomizedRegimeSearchCV,
    RegimeSearchCV,
    TaskKFold,
    TaskShuffleSplit,
)


def test_default_scores_are_the_continual_metrics_of_each_fold(
    tiny_stream, make_classifier
):
    X, y, t = tiny_stream
    clf = make_classifier()
    search = RegimeSearchCV(clf, {"lr": [0.02, 0.1]}, cv=3).fit(X, y, task_id=t)
    results = search.cv_results_
    # Brute force: train the candidate on each training fold, compute R.
    for i, params in enumerate(results["params"]):
        for k, (train, test) in enumerate(TaskKFold(3).split(X, y, task_id=t)):
            fitted = clone(clf).set_params(**params).fit(X[train], y[train], t[train])
            R = accuracy_matrix(fitted, X[test], y[test], t[test])
            assert results[f"split{k}_test_average_accuracy"][i] == average_accuracy(R)
            assert results[f"split{k}_test_neg_forgetting"][i] == -forgetting(R)
            assert results[f"split{k}_test_backward_transfer"][i] == (
                backward_transfer(R)
            )
            assert results[f"split{k}_test_learning_accuracy"][i] == (
                learning_accuracy(R)
            )
    best = np.argmax(results["mean_test_average_accuracy"])
    assert search.best_index_ == best and search.best_params_ == results["params"][best]
    assert search.best_score_ == results["mean_test_average_accuracy"][best]
    assert search.best_estimator_.lr == search.best_params_["lr"]
    assert search.best_estimator_.tasks_ == [0, 1]
    assert search.n_splits_ == 3 and search.multimetric_
    assert "mean_train_average_accuracy" not in results


def test_best_params_is_the_regime_known_to_be_best(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    search = RegimeSearchCV(
        make_classifier(), {"lr": [1e-6, 0.1], "lr_decay": [0.5, 1.0]}, cv=2
    ).fit(X, y, task_id=t)
    assert search.best_params_ == {"lr": 0.1, "lr_decay": 1.0}
    tiny_lr = search.cv_results_["param_lr"] == 1e-6
    assert np.all(search.cv_results_["mean_test_average_accuracy"][tiny_lr] < 0.2)
    assert search.best_score_ > 0.3  # chance: 0.1


def test_score_uses_the_refit_metric_on_held_out_tasks(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    train, test = next(TaskShuffleSplit(random_state=0).split(X, y, task_id=t))
    search = RegimeSearchCV(make_classifier(), {"lr": [0.1]}, cv=2)
    search.fit(X[train], y[train], task_id=t[train])
    R = accuracy_matrix(search.best_estimator_, X[test], y[test], t[test])
    assert search.score(X[test], y[test], task_id=t[test]) == average_accuracy(R)


def test_nested_cross_validation_scores_each_refitted_search(
    tiny_stream, make_classifier
):
    X, y, t = tiny_stream
    search = RegimeSearchCV(make_classifier(), {"lr": [0.05, 0.1]}, cv=2)
    outer = TaskKFold(n_splits=2)
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_validate(
            search,
            X,
            y,
            cv=outer,
            params={"task_id": t},
            scoring=get_continual_scorer("average_accuracy"),
            return_estimator=True,
        )
    folds = outer.split(X, y, task_id=t)
    for (_, test), fitted, score in zip(
        folds, scores["estimator"], scores["test_score"], strict=True
    ):
        R = accuracy_matrix(fitted.best_estimator_, X[test], y[test], t[test])
        assert score == pytest.approx(average_accuracy(R))


def test_diverging_candidate_gets_error_score_with_a_warning_naming_it(
    tiny_stream, make_classifier
):
    X, y, t = tiny_stream
    search = RegimeSearchCV(
        make_classifier(), {"lr": [0.1, 1e30]}, cv=2, error_score=-1.0
    )
    with pytest.warns(FitFailedWarning) as record:
        search.fit(X, y, task_id=t)
    messages = [str(w.message) for w in record]
    assert any(
        "{'lr': 1e+30} failed on 2 of 2 folds" in m and "FloatingPointError" in m
        for m in messages
    )
    results = search.cv_results_
    assert results["split0_test_neg_forgetting"][1] == -1.0
    assert results["mean_test_average_accuracy"][1] == -1.0
    assert search.best_params_ == {"lr": 0.1}
    with pytest.raises(FloatingPointError, match="diverged"):
        RegimeSearchCV(
            make_classifier(), {"lr": [1e30]}, cv=2, error_score="raise"
        ).fit(X, y, task_id=t)


class DeviceRecordingClassifier(ContinualClassifier):
    """Records the device and learning rate of every fit."""

    fits: ClassVar[list] = []

    def fit(self, X, y, task_id=None):
        self.fits.append((self.lr, self.device))
        return super().fit(X, y, task_id=task_id)


def test_devices_are_assigned_to_candidates_round_robin(tiny_stream):
    X, y, t = tiny_stream
    DeviceRecordingClassifier.fits = []
    clf = DeviceRecordingClassifier(max_epochs=1, module__hidden_sizes=(4,))
    search = RegimeSearchCV(
        clf, {"lr": [0.1, 0.2, 0.3]}, cv=2, devices=["cpu:0", "cpu:1"]
    ).fit(X, y, task_id=t)
    # The subclass overrides fit: its candidates cannot train stacked.
    assert search.cv_results_["vectorized_group"].tolist() == [-1, -1, -1]
    assert set(search.cv_results_["vectorize_fallback"]) == {
        "DeviceRecordingClassifier overrides fit"
    }
    expected = {0.1: "cpu:0", 0.2: "cpu:1", 0.3: "cpu:0"}
    fits, refit = (
        DeviceRecordingClassifier.fits[:-1],
        DeviceRecordingClassifier.fits[-1],
    )
    assert sorted(fits) == sorted([*expected.items()] * 2)
    assert search.cv_results_["device"].tolist() == ["cpu:0", "cpu:1", "cpu:0"]
    assert refit == (search.best_params_["lr"], "cpu:0")
    assert clf.device == "cpu"
    # The device is the search's doing, not a parameter of the candidates.
    assert set(search.best_params_) == {"lr"}
    assert all(set(params) == {"lr"} for params in search.cv_results_["params"])
    assert not [key for key in search.cv_results_ if key.startswith("param_skcl")]
    assert type(search.best_estimator_) is DeviceRecordingClassifier
    assert search.best_estimator_.device == "cpu:0"

    DeviceRecordingClassifier.fits = []
    search = RegimeSearchCV(clf.set_params(device="cpu:1"), {"lr": [0.1]}, cv=2)
    search.fit(X, y, task_id=t)
    assert {device for _, device in DeviceRecordingClassifier.fits} == {"cpu:1"}
    assert "device" not in search.cv_results_


def test_auto_devices_are_the_gpus_or_the_cpu(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    search = RegimeSearchCV(make_classifier(), {"lr": [0.1]}, cv=2, devices="auto")
    search.fit(X, y, task_id=t)
    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    assert search.cv_results_["device"][0] == (gpus or ["cpu"])[0]


def threads_scorer(estimator, X, y):
    return torch.get_num_threads()


@pytest.mark.parametrize("n_threads", [None, 1, 3])
def test_torch_threads_are_bounded_per_fit_and_restored(
    tiny_stream, make_classifier, n_threads
):
    X, y, t = tiny_stream
    torch.set_num_threads(4)
    search = RegimeSearchCV(
        make_classifier(),
        {"lr": [0.1]},
        cv=2,
        scoring=threads_scorer,
        n_threads=n_threads,
    ).fit(X, y, task_id=t)
    expected = min(4, cpu_count()) if n_threads is None else n_threads
    assert search.cv_results_["split0_test_score"][0] == expected
    assert torch.get_num_threads() == 4


def test_scoring_names_lists_and_callables(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    clf = make_classifier()
    single = RegimeSearchCV(clf, {"lr": [0.1]}, cv=2, scoring="neg_forgetting")
    single.fit(X, y, task_id=t)
    assert "mean_test_score" in single.cv_results_ and not single.multimetric_

    def n_tasks_held_out(estimator, X, y, task_id=None):
        return len(np.unique(task_id))

    multi = RegimeSearchCV(
        clf,
        {"lr": [0.1]},
        cv=2,
        scoring={
            "acc": "average_accuracy",
            "pooled": "accuracy",
            "n": n_tasks_held_out,
        },
        refit="acc",
    ).fit(X, y, task_id=t)
    results = multi.cv_results_
    assert results["split0_test_n"][0] == 2
    train, test = next(TaskKFold(2).split(X, y, task_id=t))
    pooled = (
        clone(clf).fit(X[train], y[train], task_id=t[train]).score(X[test], y[test])
    )
    assert results["split0_test_pooled"][0] == pooled
    listed = RegimeSearchCV(
        clf, {"lr": [0.1]}, cv=2, scoring=["learning_accuracy"], refit=False
    ).fit(X, y, task_id=t)
    assert "mean_test_learning_accuracy" in listed.cv_results_
    assert not hasattr(listed, "best_estimator_")
    with pytest.raises(ValueError, match="neg_forgetting"):
        RegimeSearchCV(clf, {"lr": [0.1]}, scoring="forgetting").fit(X, y, task_id=t)


@pytest.mark.parametrize("error_score", [np.nan, "raise"])
def test_a_scorer_that_drops_the_task_ids_stops_the_search(
    tiny_stream, make_classifier, error_score
):
    X, y, t = tiny_stream
    continual = get_continual_scorer("neg_forgetting")

    def wrapper(estimator, X, y):  # takes no task_id, so it gets none
        return continual(estimator, X, y)

    search = RegimeSearchCV(
        make_classifier(),
        {"lr": [1e-6, 0.1]},
        scoring={"acc": "average_accuracy", "f": wrapper},
        refit="acc",
        cv=2,
        error_score=error_score,
    )
    with pytest.raises(MissingTaskIdError, match="must take task_id and pass it on"):
        search.fit(X, y, task_id=t)
    assert not hasattr(search, "cv_results_")
    assert isinstance(search.estimator, ContinualClassifier)


def test_randomized_search_samples_n_iter_candidates(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    distributions = {"lr": loguniform(1e-3, 0.3), "module__dropout": [0.0, 0.2]}
    searches = [
        RandomizedRegimeSearchCV(
            make_classifier(), distributions, n_iter=3, cv=2, random_state=0
        ).fit(X, y, task_id=t)
        for _ in range(2)
    ]
    params = searches[0].cv_results_["params"]
    assert len(params) == 3 and params == searches[1].cv_results_["params"]
    assert all(1e-3 <= p["lr"] <= 0.3 for p in params)
    np.testing.assert_array_equal(
        searches[0].cv_results_["mean_test_average_accuracy"],
        searches[1].cv_results_["mean_test_average_accuracy"],
    )


def test_regressor_and_penalty_parameters(tiny_stream):
    from skcl.penalties import L2

    X, y, t = tiny_stream
    reg = ContinualRegressor(
        penalty=L2(),
        max_epochs=1,
        batch_size=10,
        module__hidden_sizes=(8,),
        random_state=0,
    )
    search = RegimeSearchCV(reg, {"penalty__lam": [0.0, 1.0], "lr": [1e-3]}, cv=2).fit(
        X, y / 9, task_id=t
    )
    assert search.best_estimator_.penalty.lam == search.best_params_["penalty__lam"]
    assert np.all(np.isfinite(search.cv_results_["mean_test_average_accuracy"]))


def test_progress_is_reported_only_when_verbose(tiny_stream, make_classifier, capsys):
    X, y, t = tiny_stream
    grid = {"lr": [0.05, 0.1]}
    RegimeSearchCV(make_classifier(), grid, cv=2).fit(X, y, task_id=t)
    assert capsys.readouterr().err == ""
    RegimeSearchCV(make_classifier(), grid, cv=2, verbose=1).fit(X, y, task_id=t)
    # joblib's progress report of the fits (scikit-learn's Parallel).
    assert re.search(r"Done +4 out of +4", capsys.readouterr().err)


def test_pipeline_gets_task_id_without_global_routing(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    pipe = make_pipeline(StandardScaler(), make_classifier())
    search = RegimeSearchCV(
        pipe, {"continualclassifier__lr": [0.1]}, cv=2, scoring="accuracy"
    ).fit(X, y, task_id=t)
    assert search.best_estimator_[-1].tasks_ == [0, 1]
    assert not sklearn.get_config()["enable_metadata_routing"]


def test_invalid_parameters_are_rejected(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    clf = make_classifier()
    cases = [
        (RegimeSearchCV(clf, {"lr": [0.1]}, devices=[]), "devices must be"),
        (RegimeSearchCV(clf, {"lr": [0.1]}, devices="gpu"), "devices"),
        (RegimeSearchCV(clf, {"lr": [0.1]}, n_threads=0), "n_threads"),
        (
            RegimeSearchCV(LogisticRegression(), {"C": [1.0]}, devices=["cpu"]),
            "no 'device' parameter",
        ),
        (
            RegimeSearchCV(clf, {"device": ["cpu"]}, devices=["cpu"], cv=2),
            "search over the device",
        ),
        (RegimeSearchCV(clf, {"lr": [0.1]}, scoring=[]), "non-empty"),
    ]
    for search, match in cases:
        with pytest.raises(ValueError, match=match):
            search.fit(X, y, task_id=t)


def test_hold_out_split_and_train_scores(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    cv = TaskShuffleSplit(random_state=0)
    search = RegimeSearchCV(
        make_classifier(max_epochs=3), {"lr": [0.1]}, cv=cv, return_train_score=True
    ).fit(X, y, task_id=t)
    results = search.cv_results_
    assert search.n_splits_ == 1 and "split1_test_average_accuracy" not in results
    train, _ = next(cv.split(X, y, task_id=t))
    fitted = clone(make_classifier(max_epochs=3)).fit(X[train], y[train], t[train])
    R = accuracy_matrix(fitted, X[train], y[train], t[train])
    assert results["split0_train_average_accuracy"][0] == average_accuracy(R)


def test_the_searches_run_on_scikit_learns_fit(
    tiny_stream, make_classifier, monkeypatch
):
    X, y, t = tiny_stream
    calls = []
    sklearn_fit = BaseSearchCV.fit

    def spy(search, *args, **params):
        calls.append(sorted(params))
        return sklearn_fit(search, *args, **params)

    monkeypatch.setattr(BaseSearchCV, "fit", spy)
    grid = RegimeSearchCV(
        make_classifier(), {"lr": [0.1]}, cv=2, return_train_score=True
    ).fit(X, y, task_id=t)
    randomized = RandomizedRegimeSearchCV(
        make_classifier(), {"lr": [0.05, 0.1]}, n_iter=1, cv=2, random_state=0
    ).fit(X, y, task_id=t)
    assert calls == [["task_id"], ["task_id"]]
    assert isinstance(grid, GridSearchCV)
    assert isinstance(randomized, RandomizedSearchCV)
    # The only fit of the searches is a thin wrapper around super().fit.
    for search in (RegimeSearchCV, RandomizedRegimeSearchCV):
        owners = [cls for cls in search.__mro__ if "fit" in vars(cls)]
        assert owners[1] is BaseSearchCV
        assert "super().fit(" in inspect.getsource(owners[0].fit)
    # scikit-learn's return_train_score: every metric on every training fold.
    for metric in ["average_accuracy", "neg_forgetting", "learning_accuracy"]:
        for key in [f"split0_train_{metric}", f"mean_train_{metric}"]:
            assert np.isfinite(grid.cv_results_[key]).all()
    assert "mean_train_average_accuracy" not in randomized.cv_results_


def test_groups_reach_a_splitter_that_requests_them(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    groups = np.arange(len(X)) % 3
    search = RegimeSearchCV(make_classifier(), {"lr": [0.1]}, cv=GroupKFold(3))
    search.fit(X, y, task_id=t, groups=groups)
    assert search.n_splits_ == 3
    for k, (train, test) in enumerate(GroupKFold(3).split(X, y, groups)):
        fitted = clone(make_classifier()).fit(X[train], y[train], t[train])
        R = accuracy_matrix(fitted, X[test], y[test], t[test])
        assert search.cv_results_[f"split{k}_test_average_accuracy"][0] == (
            average_accuracy(R)
        )


class TaskRecorder:
    """A scikit-learn callback recording the tasks it is called on."""

    def __init__(self):
        self.tasks = []

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, **kwargs):
        self.tasks.append(context.task_name)

    def on_fit_task_end(self, estimator, context, **kwargs):
        pass


def test_scikit_learn_callbacks_reach_the_search(tiny_stream, make_classifier):
    pytest.importorskip("sklearn.callback")  # scikit-learn >= 1.9
    X, y, t = tiny_stream
    recorder = TaskRecorder()
    search = RegimeSearchCV(make_classifier(), {"lr": [0.05, 0.1]}, cv=2)
    search.set_callbacks(recorder).fit(X, y, task_id=t)
    assert recorder.tasks.count("candidate-split-evaluation") == 4
    assert {"fit", "search", "refit-with-best-params"} <= set(recorder.tasks)
