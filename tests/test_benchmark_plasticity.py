"""``skcl benchmark`` on the L2 Init paper's streams: presets, streams, runs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from skcl import ContinualClassifier
from skcl._benchmark import STREAMS, load_stream, regime_of, strategy_params
from skcl._benchmark._plasticity_presets import PLASTICITY_STRATEGIES
from skcl.callbacks import PrequentialScore
from skcl.cli import main
from skcl.datasets import fetch_mnist, iter_permuted_mnist, make_random_label_mnist
from skcl.metrics import online_accuracy, prequential_scores
from skcl.penalties import EWC, L2Init, ShrinkAndPerturb
from skcl.plasticity import ContinualBackprop, ReDO

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists(),
    reason="MNIST IDX files not found in ../shared/data/mnist",
)
PERMUTED, RANDOM_LABEL = "plasticity-permuted", "plasticity-random-label"


def test_the_streams_are_listed_with_their_regimes():
    assert {"plasticity-permuted-mnist", "random-label-mnist"} <= set(STREAMS)
    assert regime_of("plasticity-permuted-mnist") == PERMUTED
    assert regime_of("random-label-mnist") == RANDOM_LABEL


@pytest.mark.parametrize(
    "strategy, regime, lr, expected",
    [
        ("naive", PERMUTED, 1e-4, {}),
        ("naive", RANDOM_LABEL, 1e-4, {}),
        ("l2", PERMUTED, 1e-3, {"optimizer__weight_decay": 1e-2}),
        ("l2", RANDOM_LABEL, 1e-4, {"optimizer__weight_decay": 1e-2}),
        ("l2init", PERMUTED, 1e-3, {"penalty": L2Init(lam=1e-2)}),
        ("l2init", RANDOM_LABEL, 1e-4, {"penalty": L2Init(lam=1e-2)}),
        (
            "shrink-perturb",
            PERMUTED,
            1e-3,
            {"penalty": ShrinkAndPerturb(shrink=1e-3, noise=1e-2)},
        ),
        (
            "shrink-perturb",
            RANDOM_LABEL,
            1e-4,
            {"penalty": ShrinkAndPerturb(shrink=1e-4, noise=1e-2)},
        ),
        ("redo", PERMUTED, 1e-3, {"penalty": ReDO(period=625, reinit="initial")}),
        (
            "redo",
            RANDOM_LABEL,
            1e-3,
            {"penalty": ReDO(tau=0.1, period=30000, reinit="initial")},
        ),
        ("cbp", PERMUTED, 1e-3, {"penalty": ContinualBackprop(rho=1e-3)}),
        ("cbp", RANDOM_LABEL, 1e-3, {"penalty": ContinualBackprop(rho=1e-3)}),
        ("layer-norm", PERMUTED, 1e-3, {"module__layer_norm": True}),
        ("layer-norm", RANDOM_LABEL, 1e-4, {"module__layer_norm": True}),
        ("crelu", PERMUTED, 1e-3, {"module__activation": "crelu"}),
        ("crelu", RANDOM_LABEL, 1e-3, {"module__activation": "crelu"}),
    ],
)
def test_presets_are_the_papers_best_adam_settings(strategy, regime, lr, expected):
    params = strategy_params(strategy, regime, {})
    assert params["optimizer"] is torch.optim.Adam and params["lr"] == lr
    assert params["batch_size"] == 16 and params["penalty_step"] == "explicit"
    assert params["max_epochs"] == (1 if regime == PERMUTED else 400)
    width = 91 if strategy == "crelu" else 100
    assert params["module__hidden_sizes"] == (width, width)
    for key, value in expected.items():
        if key == "penalty":
            assert type(params[key]) is type(value)
            assert params[key].get_params() == value.get_params()
        else:
            assert params[key] == value


def test_presets_take_the_overrides_and_refuse_momentum():
    params = strategy_params("l2init", PERMUTED, {"lam": 0.5, "lr": 0.01})
    assert params["penalty"].lam == 0.5 and params["lr"] == 0.01
    assert strategy_params("l2", PERMUTED, {"lam": 0.5})["optimizer__weight_decay"]
    ewc = strategy_params("l2init+ewc", PERMUTED, {"lam": 3.0})["penalty"]
    assert [type(p) for p in ewc] == [L2Init, EWC]
    assert ewc[0].lam == 1e-2 and ewc[1].lam == 3.0
    assert ewc[1].get_params()["mode"] == "online" and ewc[1].decay == 0.0
    with pytest.raises(ValueError, match="trains with Adam"):
        strategy_params("naive", PERMUTED, {"momentum": 0.9})
    with pytest.raises(ValueError, match="ewc has no preset on plasticity-random"):
        strategy_params("ewc", RANDOM_LABEL, {})


@needs_mnist
def test_iter_permuted_mnist_returns_each_tasks_pixel_order():
    plain = list(
        iter_permuted_mnist(SHARED_MNIST, n_tasks=2, n_samples=5, random_state=0)
    )
    tasks = list(
        iter_permuted_mnist(
            SHARED_MNIST,
            n_tasks=2,
            n_samples=5,
            return_permutations=True,
            random_state=0,
        )
    )
    for (X, y, task), (X4, y4, task4, pixels) in zip(plain, tasks, strict=True):
        np.testing.assert_array_equal(X, X4)
        np.testing.assert_array_equal(y, y4)
        assert task == task4 and sorted(pixels) == list(range(784))
    np.testing.assert_array_equal(tasks[0][3], np.arange(784))


@needs_mnist
def test_permuted_stream_scales_draws_and_permutes_its_test_images():
    stream = load_stream(
        "plasticity-permuted-mnist", n_tasks=3, data_home=SHARED_MNIST, train_size=40
    )
    assert stream.n_tasks == 3 and not stream.multi_head
    expected = list(
        iter_permuted_mnist(
            SHARED_MNIST,
            n_tasks=3,
            n_samples=40,
            return_permutations=True,
            random_state=0,
        )
    )
    for k in (0, 1, 2, 1):  # an earlier task draws the stream again
        X, y = stream.task(k)
        np.testing.assert_array_equal(X, 2 * expected[k][0] - 1)
        np.testing.assert_array_equal(y, expected[k][1])
    mnist = fetch_mnist(SHARED_MNIST, cache=False)
    rows = np.random.RandomState(0).permutation(10000)[:1000]
    X_test, y_test = stream.test(2)
    np.testing.assert_array_equal(X_test, 2 * mnist.X_test[rows][:, expected[2][3]] - 1)
    np.testing.assert_array_equal(y_test, mnist.y_test[rows])


@needs_mnist
def test_random_label_stream_keeps_the_images_and_shuffles_the_labels():
    stream = load_stream(
        "random-label-mnist", n_tasks=2, data_home=SHARED_MNIST, train_size=30, seed=1
    )
    X, y, task_id = make_random_label_mnist(
        SHARED_MNIST, n_tasks=2, n_samples=30, random_state=1
    )
    for k in range(2):
        X_k, y_k = stream.task(k)
        np.testing.assert_array_equal(X_k, 2 * X[task_id == k] - 1)
        np.testing.assert_array_equal(y_k, y[task_id == k])
        np.testing.assert_array_equal(stream.test(k)[1], y_k)  # memorisation


def _run(tmp_path, stream, *extra, seeds="2"):
    args = ["benchmark", "--stream", stream, "--n-tasks", "3", "--seeds", seeds]
    args += ["--data-home", str(SHARED_MNIST)]
    args += [*extra, "--quiet", "--no-plots", "--output", str(tmp_path)]
    assert main(args) == 0
    return json.loads((tmp_path / "results.json").read_text())


@needs_mnist
def test_a_run_records_online_accuracy_and_the_scored_transfers(tmp_path, capsys):
    record = _run(
        tmp_path,
        "plasticity-permuted-mnist",
        *("--strategies", "naive,ewc", "--train-size", "48"),
    )
    out = capsys.readouterr().out
    assert "online acc." in out and "first 10" in out and "1-step BWT" in out
    for run in record["runs"]:
        assert run["task_free"] == (run["strategy"] == "naive")
        curve, diagonal = np.array(run["online_accuracy"]), np.array(run["R_diagonal"])
        assert curve.shape == diagonal.shape == (3,)
        assert run["first_online_accuracy"] == run["last_online_accuracy"]
        assert run["first_online_accuracy"] == pytest.approx(curve.mean())
        # Every task has 3 batches: the total is the mean of the task means.
        assert run["total_online_accuracy"] == pytest.approx(curve.mean())
        final, one_step = np.array(run["R_final"]), np.array(run["R_one_step"])
        assert final[-1] == diagonal[-1]
        assert run["backward_transfer"] == pytest.approx(
            np.mean(final[:-1] - diagonal[:-1])
        )
        assert run["one_step_backward_transfer"] == pytest.approx(
            np.mean(one_step - diagonal[:-1])
        )
        assert run["average_accuracy"] == pytest.approx(final.mean())
    summary = {row["strategy"]: row for row in record["summary"]}
    assert set(summary) == {"naive", "ewc"}
    assert "total_online_accuracy_std" in summary["naive"]


@needs_mnist
def test_a_task_free_run_is_the_plain_partial_fit_loop(tmp_path):
    """The runner's result equals a hand-written loop of ``partial_fit(X, y)``."""
    record = _run(
        tmp_path,
        "plasticity-permuted-mnist",
        *("--strategies", "l2init", "--train-size", "40"),
    )
    params = strategy_params("l2init", PERMUTED, {})
    for run in record["runs"]:
        seed = run["seed"]
        stream = load_stream(
            "plasticity-permuted-mnist",
            n_tasks=3,
            data_home=SHARED_MNIST,
            train_size=40,
            seed=seed,
        )
        clf = ContinualClassifier(
            **params,
            classes=np.arange(10),
            callbacks=[PrequentialScore(warn=False)],
            random_state=seed,
        )
        diagonal = []
        for k in range(3):
            clf.partial_fit(*stream.task(k))
            diagonal.append(clf.score(*stream.test(k)))
        scores, tasks = prequential_scores(clf)
        assert set(tasks) == {0}  # no task ids
        assert run["total_online_accuracy"] == scores.mean()
        np.testing.assert_array_equal(
            run["online_accuracy"], online_accuracy(scores, np.repeat([0, 1, 2], 3))
        )
        assert run["R_diagonal"] == diagonal
        assert run["R_final"] == [clf.score(*stream.test(k)) for k in range(3)]


@needs_mnist
def test_random_label_mnist_runs_its_eight_presets_by_default(tmp_path):
    record = _run(
        tmp_path, "random-label-mnist", "--train-size", "32", "--epochs", "1", seeds="1"
    )
    assert [row["strategy"] for row in record["summary"]] == list(PLASTICITY_STRATEGIES)
    for run in record["runs"]:
        assert run["task_free"] and len(run["online_accuracy"]) == 3


@pytest.mark.parametrize("stream", ["plasticity-permuted-mnist", "random-label-mnist"])
def test_offline_plasticity_streams_name_data_home(
    stream, tmp_path, capsys, monkeypatch
):
    import skcl.datasets._mnist as mnist

    def offline(url, timeout=None):
        raise OSError("no network")

    monkeypatch.setattr(mnist, "urlopen", offline)
    args = ["benchmark", "--stream", stream, "--data-home", str(tmp_path)]
    assert main([*args, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"skcl benchmark: error: {stream} needs the four ")
    assert "Traceback" not in err


@needs_mnist
def test_run_strategy_gives_one_seed_of_the_plasticity_run(tmp_path):
    from skcl._benchmark import run_strategy

    record = _run(
        tmp_path,
        "plasticity-permuted-mnist",
        *("--strategies", "crelu", "--train-size", "40"),
        seeds="1",
    )
    stream = load_stream(
        "plasticity-permuted-mnist", n_tasks=3, data_home=SHARED_MNIST, train_size=40
    )
    run = run_strategy(stream, "crelu", strategy_params("crelu", PERMUTED, {}), 0)
    for key in ("online_accuracy", "R_diagonal", "R_one_step", "R_final"):
        assert run[key] == record["runs"][0][key]
