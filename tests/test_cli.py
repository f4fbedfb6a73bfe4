import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _tolerance import tolerance

from skcl import ContinualClassifier
from skcl._benchmark import (
    REGIMES,
    STRATEGIES,
    STREAMS,
    load_stream,
    regime_of,
    run_strategy,
    seed_streams,
    strategy_params,
)
from skcl.cli import main
from skcl.datasets import fetch_mnist
from skcl.modules import ReducedResNet18, ResNet18
from skcl.penalties import EWC
from skcl.replay import AGEM, DER, DERPP, ER, ERACE, GEM, GDumb

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists(),
    reason="MNIST IDX files not found in ../shared/data/mnist",
)


def test_benchmark_smoke_run_writes_results(tmp_path, capsys):
    status = main(
        [
            "benchmark",
            "--strategies", "naive,ewc,joint",
            "--n-tasks", "2",
            "--seeds", "2",
            "--epochs", "1",
            "--hidden", "16",
            "--output", str(tmp_path),
            "--quiet",
        ]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    assert "forgetting" in out and "± " in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["strategy"] for r in results["runs"]] == ["naive"] * 2 + ["ewc"] * 2 + [
        "joint"
    ] * 2
    naive = results["runs"][0]
    assert len(naive["R"]) == 2 and 0 <= naive["average_accuracy"] <= 1
    assert results["runs"][-1]["forgetting"] == 0.0
    assert (tmp_path / "summary.csv").read_text().startswith("strategy,n_seeds")
    # The heatmaps show the mean over seeds; results.json has it and the std.
    ewc = np.array([r["R"] for r in results["runs"] if r["strategy"] == "ewc"])
    matrices = results["matrices"]
    assert sorted(matrices) == ["ewc", "naive"] and matrices["ewc"]["n_seeds"] == 2
    np.testing.assert_allclose(matrices["ewc"]["mean"], ewc.mean(0))
    np.testing.assert_allclose(matrices["ewc"]["std"], ewc.std(0))
    written = out.split("wrote 6 files to")[1].splitlines()[1:]
    names = ["results.json", "summary.csv", "accuracy_matrix_naive.png"]
    names += ["accuracy_matrix_ewc.png", "task_accuracy.png", "summary.png"]
    assert [Path(line.strip()).name for line in written] == names
    for name in names:
        assert (tmp_path / name).stat().st_size > 0


def test_divergence_names_its_seed_task_and_error(tmp_path, capsys):
    # An explicit step with a huge EWC strength diverges in the second task.
    args = ["benchmark", "--strategies", "naive,ewc", "--n-tasks", "2"]
    args += ["--seeds", "2", "--epochs", "1", "--hidden", "8", "--lam", "1e8"]
    args += ["--penalty-step", "explicit", "--no-plots", "--quiet"]
    assert main([*args, "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    naive, ewc = runs[:2], runs[2:]
    assert [r["diverged"] for r in runs] == [False, False, True, True]
    assert all(r["diverged_task"] is None and r["error"] is None for r in naive)
    for r in ewc:
        assert r["diverged_task"] == 1 and r["average_accuracy"] is None
        assert r["error"].startswith("Training diverged in task 1: the training loss")
    table, report = out.split("Diverged runs")
    assert "ewc (2 diverged)" in table and "nan" not in table
    assert "ewc, seed 0, task 1: Training diverged" in report
    assert "ewc, seed 1, task 1: " in report
    assert "ewc: try a lower --lr (now 0.05) or a lower --lam (now 1e+08)" in report
    assert "--penalty-step implicit" in report and "naive" not in report


def test_plots_agree_with_the_table(tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    from skcl._benchmark import summarize, write_plots

    saved = {}
    savefig = matplotlib.figure.Figure.savefig

    def record(figure, path, **kwargs):
        saved[Path(path).name] = figure
        return savefig(figure, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    rng = np.random.default_rng(0)
    results = [
        dict(strategy=s, seed=seed, R=np.tril(rng.uniform(size=(4, 4))).tolist())
        for s in ("naive", "l2")
        for seed in range(3)
    ]
    for r in results:
        R = np.array(r["R"])
        r.update(
            diverged=False,
            seconds=1.0,
            average_accuracy=R[-1].mean(),
            forgetting=float(np.mean(R[:-1].max(0)[:-1] - R[-1, :-1])),
            backward_transfer=0.0,
            learning_accuracy=float(np.diag(R).mean()),
        )
    results[5].update(diverged=True, R=None)  # l2, seed 2
    rows = summarize(results, ["naive", "l2"])
    paths = write_plots(results, rows, tmp_path, stream="permuted-digits")
    assert [p.name for p in paths] == [
        "accuracy_matrix_naive.png",
        "accuracy_matrix_l2.png",
        "task_accuracy.png",
        "summary.png",
    ]
    heatmap = saved["accuracy_matrix_l2.png"].axes[0]
    l2 = np.mean([r["R"] for r in results[3:5]], axis=0)
    np.testing.assert_allclose(heatmap.images[0].get_array(), l2)
    title = heatmap.get_title()
    assert "l2 on permuted-digits, mean of 2 seeds (1 diverged)" in title
    assert f"accuracy {rows[1]['average_accuracy']:.3f} ± " in title
    assert np.isclose(l2[-1].mean(), rows[1]["average_accuracy"])
    curves = saved["task_accuracy.png"]
    np.testing.assert_allclose(curves.axes[1].lines[0].get_ydata(), l2[:, 0])
    summary = saved["summary.png"].axes[0]
    assert summary.get_xlabel().startswith("Forgetting")
    assert [t.get_text() for t in saved["summary.png"].legends[0].get_texts()] == [
        "naive",
        "l2",
    ]


def test_parallel_runs_give_the_same_results(tmp_path):
    args = ["benchmark", "--strategies", "naive,si", "--n-tasks", "2", "--seeds", "1"]
    args += ["--epochs", "1", "--hidden", "8", "--no-plots", "--quiet"]
    main([*args, "--output", str(tmp_path / "a")])
    main([*args, "--output", str(tmp_path / "b"), "--n-jobs", "2"])
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert [r["R"] for r in a["runs"]] == [r["R"] for r in b["runs"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "naive,foo"], "unknown ['foo']"),
        (["--lr", "-1"], "must be positive"),
        (["--dropout", "1.5"], "--dropout"),
        (["--stream", "cifar"], "invalid choice"),
        (["--hidden", "a,b"], "invalid list"),
    ],
)
def test_bad_arguments_give_a_usage_message(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: skcl benchmark" in err and message in err
    assert "Traceback" not in err


def test_missing_mnist_files_give_a_short_error(tmp_path, capsys):
    status = main(
        ["benchmark", "--stream", "permuted-mnist", "--data-home", str(tmp_path)]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("skcl benchmark: error:") and "Traceback" not in err


def test_presets_apply_overrides():
    params = strategy_params("stable-sgd+ewc", "digits", {"lr": 0.3, "lam": 7.0})
    assert params["lr"] == 0.3 and params["lr_decay"] == 0.5
    assert params["module__dropout"] == 0.5
    assert isinstance(params["penalty"], EWC) and params["penalty"].lam == 7.0
    naive = strategy_params("naive", "mnist-permuted", {"hidden": (64,)})
    assert "penalty" not in naive and naive["module__hidden_sizes"] == (64,)
    stable = strategy_params("stable-sgd", "mnist-rotated", {})
    assert naive["batch_size"] == 10 and stable["batch_size"] == 64
    ten = strategy_params("stable-sgd", "mnist-rotated", {"batch_size": 10})
    assert ten["batch_size"] == 10
    presets = {s: strategy_params(s, "digits", {}, n_tasks=5) for s in STRATEGIES}
    assert {s for s, p in presets.items() if "penalty" in p} == {
        "l2", "l2init", "ewc", "online-ewc", "si", "mas", "stable-sgd+ewc", "lwf",
        "ewc+er",
    }  # fmt: skip
    assert {s for s, p in presets.items() if p.get("replay") is not None} == {
        "er", "agem", "der++", "stable-sgd+er", "ewc+er", "der", "er-ace", "gem",
        "gdumb", "icarl", "bic",
    }  # fmt: skip


def test_replay_presets_follow_table_2_and_take_the_memory_size():
    """One example per class and task: a reservoir of 10 * n_tasks samples for
    ER, per-class rings for A-GEM; plain SGD at lr 0.1, batch 32 on MNIST."""
    er = strategy_params("er", "mnist-permuted", {}, n_tasks=20)
    assert isinstance(er["replay"], ER) and er["replay"].memory_size == 200
    assert er["replay"].memory_batch_size == 64 and er["replay"].memory == "reservoir"
    assert (er["lr"], er["batch_size"], er["momentum"]) == (0.1, 32, 0.0)
    agem = strategy_params("agem", "mnist-rotated", {}, n_tasks=20)
    assert isinstance(agem["replay"], AGEM) and agem["replay"].memory_size == 1
    assert agem["replay"].memory == "class_balanced"
    stable = strategy_params("stable-sgd+er", "mnist-permuted", {"memory_size": 77})
    assert stable["replay"].memory_size == 77 and stable["lr_decay"] == 0.8
    derpp = strategy_params("der++", "digits", {}, n_tasks=5)
    assert isinstance(derpp["replay"], DERPP) and derpp["replay"].memory_size == 100
    with pytest.raises(ValueError, match="n_tasks"):
        strategy_params("er", "digits", {})


def test_memory_method_presets_take_the_memory_size():
    """The total memory: a reservoir for DER and ER-ACE, GDumb's balanced
    memory, and GEM's split evenly over the tasks (the DER paper's)."""
    presets = {
        s: strategy_params(s, "digits", {"memory_size": 200}, n_tasks=5)
        for s in ("der", "er-ace", "gem", "gdumb")
    }
    assert [type(p["replay"]) for p in presets.values()] == [DER, ERACE, GEM, GDumb]
    assert [p["replay"].memory_size for p in presets.values()] == [200, 200, 40, 200]
    assert presets["der"]["replay"].alpha == 0.1 and presets["gdumb"]["max_epochs"] == 1
    gem = strategy_params("gem", "mnist-permuted", {}, n_tasks=20)
    assert gem["replay"].memory_size == 10 and gem["lr"] == 0.1


def test_benchmark_runs_the_replay_strategies(tmp_path, capsys):
    strategies = ["er", "agem", "der++", "lwf", "der", "er-ace", "gem", "gdumb"]
    args = ["benchmark", "--strategies", ",".join(strategies), "--n-tasks", "2"]
    args += ["--seeds", "1", "--epochs", "1", "--hidden", "16", "--memory-size", "7"]
    assert main([*args, "--no-plots", "--quiet", "--output", str(tmp_path)]) == 0
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [r["strategy"] for r in runs] == strategies
    # GDumb learns 10 classes from its 7 samples alone: above chance only.
    floor = {"gdumb": 0.15}
    assert all(
        not r["diverged"] and r["average_accuracy"] > floor.get(r["strategy"], 0.3)
        for r in runs
    )
    assert (
        json.loads((tmp_path / "results.json").read_text())["config"]["memory_size"]
        == 7
    )


def test_python_dash_m_runs_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "skcl", "benchmark", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--strategies" in done.stdout


def test_a_diverging_run_is_reported_not_raised(tmp_path, capsys):
    status = main(
        [
            "benchmark", "--strategies", "naive,ewc", "--n-tasks", "2",
            "--seeds", "1", "--epochs", "1", "--lam", "1e9",
            "--penalty-step", "explicit", "--output", str(tmp_path), "--quiet",
        ]
    )  # fmt: skip
    assert status == 0
    assert "ewc (1 diverged)" in capsys.readouterr().out
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert runs[1]["diverged"] and not runs[0]["diverged"]


def test_each_seed_replicates_the_whole_experiment(tmp_path):
    args = ["benchmark", "--strategies", "naive", "--n-tasks", "2", "--seeds", "2"]
    args += ["--epochs", "1", "--hidden", "8", "--no-plots", "--quiet"]
    main([*args, "--output", str(tmp_path)])
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    params = strategy_params("naive", "digits", {"epochs": 1, "hidden": (8,)})
    for seed in (0, 1):
        stream = load_stream("permuted-digits", n_tasks=2, seed=seed)
        expected = run_strategy(stream, "naive", params, seed)
        assert runs[seed]["R"] == expected["R"]
    first, second = (load_stream("permuted-digits", seed=s) for s in (0, 1))
    assert not np.array_equal(first.X_test, second.X_test)


@pytest.mark.parametrize(("strategy", "per_task"), [("joint", 3), ("joint-budget", 1)])
def test_joint_strategies_train_on_their_budget(strategy, per_task, monkeypatch):
    seen = []
    fit = ContinualClassifier.partial_fit

    def counting_fit(self, X, y, **kwargs):
        seen.append(len(y))
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(ContinualClassifier, "partial_fit", counting_fit)
    stream = load_stream("permuted-digits", n_tasks=3, seed=0)
    params = strategy_params(strategy, "digits", {"epochs": 2, "hidden": (8,)})
    result = run_strategy(stream, strategy, params, 0)
    assert sum(seen) == 2 * per_task * len(stream.task(0)[1])
    assert len(result["R"]) == 1 and result["forgetting"] == 0.0


def test_holdout_is_rejected_for_digits():
    with pytest.raises(ValueError, match="MNIST streams only"):
        load_stream("permuted-digits", holdout=100)


@needs_mnist
def test_holdout_scores_on_held_out_training_images():
    mnist = fetch_mnist(SHARED_MNIST, download_if_missing=False, cache=False)
    stream = load_stream(
        "permuted-mnist", n_tasks=2, data_home=SHARED_MNIST, holdout=1000, seed=0
    )
    X, y = stream.task(0)
    assert len(y) == 59000
    np.testing.assert_array_equal(X, mnist.X_train[:59000])
    np.testing.assert_array_equal(stream.X_test[:1000], mnist.X_train[-1000:])
    np.testing.assert_array_equal(stream.y_test, np.tile(mnist.y_train[-1000:], 2))
    with pytest.raises(ValueError, match="holdout must be in"):
        load_stream("permuted-mnist", data_home=SHARED_MNIST, holdout=60000)


def test_regime_of_names_the_presets_of_each_stream():
    for name in STREAMS:
        assert regime_of(name) in REGIMES
        if name.endswith("digits"):
            assert load_stream(name, n_tasks=2).regime == regime_of(name)
    assert regime_of("rotated-mnist") == "mnist-rotated"


def test_class_split_digits_is_class_incremental():
    stream = load_stream("class-split-digits")
    assert not stream.multi_head and stream.classes.tolist() == list(range(10))
    assert [sorted(set(stream.task(k)[1])) for k in range(2)] == [[0, 1], [2, 3]]
    assert load_stream("split-digits").multi_head


@needs_mnist
def test_shared_split_mnist_maps_two_tasks_onto_five_outputs():
    stream = load_stream("shared-split-mnist", data_home=SHARED_MNIST)
    assert stream.n_tasks == 2 and stream.classes.tolist() == [0, 1, 2, 3, 4]
    mnist = fetch_mnist(SHARED_MNIST, cache=False)
    X1, y1 = stream.task(1)
    assert len(y1) == (mnist.y_train >= 5).sum() and set(y1) == {0, 1, 2, 3, 4}
    assert regime_of("shared-split-mnist") == "mnist-permuted"


def test_stream_seed_trains_the_seeds_together_as_they_would_alone(tmp_path, capsys):
    args = ["benchmark", "--strategies", "ewc,stable-sgd,er", "--n-tasks", "3"]
    args += ["--seeds", "3", "--stream-seed", "4", "--epochs", "1", "--hidden", "16"]
    assert main([*args, "--no-plots", "--quiet", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the seeds trained one by one" not in out
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    stream = load_stream("permuted-digits", n_tasks=3, seed=4)
    for run in runs:
        overrides = {"epochs": 1, "hidden": (16,)}
        params = strategy_params(run["strategy"], "digits", overrides, n_tasks=3)
        alone = run_strategy(stream, run["strategy"], params, run["seed"])
        # Stable SGD's dropout draws each seed's own masks: equal to rounding.
        # float32 rounding moves the logits far less than the top-two margin of
        # all but at most one of a task's 450 test rows: one flip, 1/450 (and an
        # ulp of each k / 450).
        atol = 1 / np.bincount(stream.t_test).min() + tolerance(3)
        np.testing.assert_allclose(run["R"], alone["R"], rtol=0, atol=atol)
    assert len({tuple(map(tuple, r["R"])) for r in runs if r["strategy"] == "ewc"}) == 3


def test_seeds_with_their_own_streams_train_together_as_they_would_alone(
    tmp_path, capsys
):
    args = ["benchmark", "--strategies", "ewc,stable-sgd,er", "--n-tasks", "3"]
    args += ["--seeds", "3", "--epochs", "1", "--hidden", "16"]
    assert main([*args, "--no-plots", "--quiet", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the seeds trained one by one" not in out
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    for run in runs:
        stream = load_stream("permuted-digits", n_tasks=3, seed=run["seed"])
        overrides = {"epochs": 1, "hidden": (16,)}
        params = strategy_params(run["strategy"], "digits", overrides, n_tasks=3)
        alone = run_strategy(stream, run["strategy"], params, run["seed"])
        # float32: the batched kernels sum in another order than one net alone,
        # which moves the logits far less than the top-two margin of all but at
        # most one of a task's 450 test rows: one flip, 1/450 (and an ulp of k / 450).
        atol = 1 / np.bincount(stream.t_test).min() + tolerance(3)
        np.testing.assert_allclose(run["R"], alone["R"], rtol=0, atol=atol)


# The command line refuses what it does not understand (issue 28, item 2).


def _parse_error(args, capsys):
    """Parse ``skcl benchmark args``; return what the refusal printed."""
    from skcl.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["benchmark", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: skcl benchmark") and "Traceback" not in err
    assert "usage: skcl [-h]" not in err
    return err.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--seed", "42"], "unrecognized option --seed (did you mean --seeds?)"),
        (["--seed=42"], "unrecognized option --seed (did you mean --seeds?)"),
        (["--epoch", "2"], "unrecognized option --epoch (did you mean --epochs?)"),
        (["--epocs", "2"], "unrecognized option --epocs (did you mean --epochs?)"),
        (["--strat", "ewc"], "did you mean --strategies?"),
    ],
)
def test_a_prefix_or_a_typo_of_an_option_is_refused_with_the_closest(
    args, hint, capsys
):
    """``--seed 42`` once meant ``--seeds 42``: 42 seeds of every strategy."""
    message = _parse_error(args, capsys)
    assert message.startswith("skcl benchmark: error: ") and hint in message
    # The option's value is not a second complaint.
    assert "unexpected" not in message


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (
            ["--strategies", "ewc", "er"],
            "--strategies takes one comma-separated list, without spaces: "
            "--strategies ewc,er",
        ),
        (["--strategies", "ewc", "er", "der++"], "--strategies ewc,er,der++"),
        (["--hidden", "32", "32", "--epochs", "1"], "--hidden 32,32"),
        (["--lr", "0.1", "0.2"], "--lr takes one value, got 0.1 0.2"),
        (["--strategies=ewc", "er"], "--strategies ewc,er"),
        (["--no-plots", "ewc"], "--no-plots takes no value, got ewc"),
        (["ewc"], "did you mean --strategies ewc?"),
        (["split-digits"], "did you mean --stream split-digits?"),
        (["--lr", "abc"], "argument --lr: expected a positive number, got 'abc'"),
        (["--seeds", "2.5"], "argument --seeds: expected a positive integer"),
        (["--momentum", "x"], "argument --momentum: expected a number >= 0"),
        (["--n-jobs", "all"], "argument --n-jobs: expected an integer, got 'all'"),
        (["--dropout", "abc"], "argument --dropout: expected a number in [0, 1)"),
        (["--strategies", "ewc,derp++"], "unknown ['derp++'] (did you mean der++?)"),
        (["--strategies", "ewc er"], "separate the names with commas"),
        (["--hidden", "a,b"], "expected comma-separated integers, e.g. 256,256"),
    ],
)
def test_a_stray_or_bad_value_says_what_was_expected(args, hint, capsys):
    message = _parse_error(args, capsys)
    assert hint in message
    assert "invalid parse value" not in message


def test_both_problems_of_one_command_line_are_named(capsys):
    message = _parse_error(["--strategies", "ewc", "er", "--epocs", "2"], capsys)
    assert "--strategies ewc,er" in message and "did you mean --epochs?" in message


def test_help_describes_each_stream_and_every_default(capsys, monkeypatch):
    from skcl._benchmark import DATA, SCENARIOS
    from skcl.cli import build_parser

    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    out = capsys.readouterr().out
    for name in STREAMS:
        assert f"  {name}: {SCENARIOS[name]}\n" in out
        assert DATA[name].split(";")[0] in out
    assert "split-digits: task-incremental, one head per task" in out
    assert "class-split-digits: class-incremental" in out
    bench = build_parser()._subparsers._group_actions[0].choices["benchmark"]
    for action in bench._actions:
        if action.dest != "help":
            assert "(default: " in action.help, action.option_strings
            assert "None" not in action.help % vars(action)
    helps = {a.option_strings[-1]: a.help % vars(a) for a in bench._actions}
    flat = " ".join(out.split())
    for option, text in helps.items():
        assert f"{option} " in flat and " ".join(text.split()) in flat
    for option in ("--lr", "--lr-decay", "--batch-size", "--dropout", "--momentum"):
        assert "(default: the strategy's preset: digits " in helps[option]
    assert helps["--lr"].endswith(
        "(default: the strategy's preset: digits 0.05; MNIST 0.01, 0.02, 0.05, 0.1)"
    )
    assert helps["--seeds"].endswith("(default: 3)")


def test_the_presets_unset_values_are_the_estimators_defaults():
    import inspect

    from skcl.cli import _UNSET
    from skcl.modules import MLP

    defaults = ContinualClassifier().get_params()
    assert _UNSET["lr_decay"] == defaults["lr_decay"]
    assert _UNSET["penalty_step"] == defaults["penalty_step"]
    dropout = inspect.signature(MLP).parameters["dropout"].default
    assert _UNSET["module__dropout"] == dropout


def test_the_header_names_the_streams_scenario(tmp_path, capsys):
    args = ["benchmark", "--stream", "split-digits", "--strategies", "naive"]
    args += ["--n-tasks", "2", "--seeds", "1", "--epochs", "1", "--hidden", "8"]
    assert main([*args, "--no-plots", "--quiet", "--output", str(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == (
        "split-digits: task-incremental, one head per task; 2 tasks, 1 strategy, 1 seed"
    )
    config = json.loads((tmp_path / "results.json").read_text())["config"]
    assert config["scenario"] == "task-incremental, one head per task"


def test_each_scenario_agrees_with_its_stream():
    from skcl._benchmark import DATA, SCENARIOS

    assert set(SCENARIOS) == set(DATA) == set(STREAMS)
    for name in STREAMS:
        assert SCENARIOS[name].split(",")[0] in (
            "task-incremental",
            "domain-incremental",
            "class-incremental",
        )
        if name.endswith("digits"):
            multi_head = load_stream(name, n_tasks=5).multi_head
            assert multi_head == ("one head per task" in SCENARIOS[name])
            assert multi_head == SCENARIOS[name].startswith("task-incremental")
    assert SCENARIOS["class-split-digits"].startswith("class-incremental")


def test_offline_mnist_names_data_home_and_skcl_data(tmp_path, capsys, monkeypatch):
    import skcl.datasets._mnist as mnist

    def offline(url, timeout=None):
        raise OSError("no network")

    monkeypatch.setattr(mnist, "urlopen", offline)
    args = ["benchmark", "--stream", "permuted-mnist", "--data-home", str(tmp_path)]
    assert main([*args, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("skcl benchmark: error: permuted-mnist needs the four ")
    assert "pass --data-home <folder with the files> or set SKCL_DATA" in err
    assert str(tmp_path) in err and "no network" in err
    assert "Traceback" not in err


def test_summary_plot_gives_each_strategy_its_own_colour(tmp_path):
    """Seventeen strategies: seventeen colours (there were ten, and pairs that
    differed only by their marker); past twenty, colour and marker together."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from skcl._benchmark._report import _styles, _summary_figure

    rows = [
        dict(
            strategy=s,
            n_seeds=1,
            forgetting=k / 20,
            forgetting_std=0.0,
            average_accuracy=1 - k / 20,
            average_accuracy_std=0.0,
        )
        for k, s in enumerate(STRATEGIES)
    ]
    figure = _summary_figure(plt, rows, "permuted-digits")
    points = [c.lines[0] for c in figure.axes[0].containers]
    colours = [to_hex(line.get_color()) for line in points]
    assert len(points) == len(STRATEGIES) == len(set(colours))
    legend = figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == list(STRATEGIES)
    plt.close(figure)
    assert len({to_hex(c) for c, _ in _styles(20)}) == 20
    many = _styles(45)
    assert len({(to_hex(c), m) for c, m in many}) == 45


def test_one_progress_bar_counts_the_strategies(tmp_path, capsys):
    args = ["benchmark", "--strategies", "naive,ewc,joint", "--n-tasks", "2"]
    args += ["--seeds", "2", "--epochs", "1", "--hidden", "8", "--no-plots"]
    assert main([*args, "--output", str(tmp_path), "--verbose"]) == 0
    captured = capsys.readouterr()
    assert "strategies: 100%" in captured.err and "3/3 [" in captured.err
    assert "seeds)" not in captured.err  # no bar per strategy
    runs = [line for line in captured.out.splitlines() if ", seed " in line]
    assert [line.split(":")[0] for line in runs] == [
        f"{s}, seed {seed}" for s in ("naive", "ewc", "joint") for seed in (0, 1)
    ]
    assert all(" accuracy " in line and "forgetting" in line for line in runs)


def test_quiet_prints_no_bar(tmp_path, capsys):
    args = ["benchmark", "--strategies", "naive", "--n-tasks", "2", "--seeds", "1"]
    args += ["--epochs", "1", "--hidden", "8", "--no-plots", "--quiet"]
    assert main([*args, "--output", str(tmp_path)]) == 0
    assert "strategies:" not in capsys.readouterr().err


def test_results_and_header_say_what_the_scores_depend_on(
    tmp_path, capsys, monkeypatch
):
    """Versions, CPU kernels, threads, dtype: in results.json and under the header."""
    import platform
    import time

    import sklearn
    import skorch
    import torch

    from skcl import __version__
    from skcl._benchmark import format_environment

    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")  # recorded, whatever it changes
    args = ["benchmark", "--strategies", "naive", "--n-tasks", "2", "--seeds", "1"]
    args += ["--epochs", "1", "--hidden", "8", "--no-plots", "--quiet"]
    start = time.perf_counter()
    assert main([*args, "--output", str(tmp_path)]) == 0
    elapsed = time.perf_counter() - start
    lines = capsys.readouterr().out.splitlines()
    results = json.loads((tmp_path / "results.json").read_text())
    env = results["environment"]
    assert {k: env[k] for k in ("skcl", "torch", "sklearn", "skorch", "numpy")} == {
        "skcl": __version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "skorch": skorch.__version__,
        "numpy": np.__version__,
    }
    assert env["python"] == platform.python_version()
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["torch_threads"] == 1 and env["dtype"] == "float32"
    assert env["kernel_settings"]["MKL_CBWR"] == "COMPATIBLE"
    assert env["cores"] >= 1 and env["cpu"] and env["date"][:2] == "20"
    assert env["load_average"] >= 0
    assert 0 < results["wall_seconds"] < elapsed
    assert lines[1] == format_environment(env)
    assert lines[1].startswith(f"skcl {__version__}, torch {torch.__version__}, ")
    assert f"{env['cpu_capability']} kernels, 1 torch thread, float32" in lines[1]
    settings = ", ".join(f"{k}={v}" for k, v in env["kernel_settings"].items())
    assert lines[1].endswith(f", {settings}") and "MKL_CBWR=COMPATIBLE" in settings
    assert lines[2].startswith("strategy ")


def test_the_environment_line_reads_as_written():
    from skcl._benchmark import format_environment

    env = dict(
        skcl="0.1.0",
        torch="2.13.0+cpu",
        sklearn="1.9.1",
        skorch="1.4.0",
        numpy="2.4.6",
        python="3.11.7",
        cpu="AMD EPYC 7B13",
        cores=2,
        cpu_capability="AVX2",
        torch_threads=2,
        dtype="float64",
        kernel_settings={"ATEN_CPU_CAPABILITY": "default"},
    )
    assert format_environment(env) == (
        "skcl 0.1.0, torch 2.13.0+cpu, scikit-learn 1.9.1, skorch 1.4.0, numpy 2.4.6, "
        "Python 3.11.7; AMD EPYC 7B13, 2 cores, AVX2 kernels, 2 torch threads, "
        "float64, ATEN_CPU_CAPABILITY=default"
    )


def write_cifar(folder, name, train_per_class, test_per_class):
    """A CIFAR binary folder in the official layout, a few images per class."""
    rng = np.random.RandomState(0)
    n_classes = 100 if name == "cifar-100-binary" else 10
    files = (
        {"train.bin": train_per_class, "test.bin": test_per_class}
        if n_classes == 100
        else {
            **{f"data_batch_{i}.bin": train_per_class // 5 for i in range(1, 6)},
            "test_batch.bin": test_per_class,
        }
    )
    root = folder / name
    root.mkdir()
    for file, per_class in files.items():
        labels = np.repeat(np.arange(n_classes), per_class)
        rng.shuffle(labels)
        records = [
            bytes([label // 5] * (n_classes == 100) + [label])
            + rng.randint(0, 256, 3072).astype(np.uint8).tobytes()
            for label in labels
        ]
        (root / file).write_bytes(b"".join(records))
    names = ["coarse_label_names.txt", "fine_label_names.txt"]
    for file, n in (
        zip(names, (20, 100), strict=True)
        if n_classes == 100
        else [("batches.meta.txt", 10)]
    ):
        (root / file).write_text("\n".join(f"class{i}" for i in range(n)))


def test_split_cifar100_is_table_2s_task_incremental_stream(tmp_path):
    write_cifar(tmp_path, "cifar-100-binary", 2, 1)
    stream = load_stream("split-cifar100", data_home=tmp_path)
    assert (stream.n_tasks, stream.regime, stream.multi_head) == (
        20,
        "split-cifar100",
        True,
    )
    for k in range(20):
        X, y = stream.task(k)
        assert sorted(set(y)) == list(range(5 * k, 5 * k + 5)) and len(y) == 10
        assert X.shape == (10, 3, 32, 32) and X.dtype == np.float32
        test = stream.t_test == k
        assert sorted(stream.y_test[test]) == list(range(5 * k, 5 * k + 5))
    # Normalized per channel with the training images' statistics.
    X = np.concatenate([stream.task(k)[0] for k in range(20)])
    n = X[:, 0].size
    for c in range(3):
        # float32 sums of n values of about 1 (Higham's gamma_n).
        bound = tolerance(n, np.abs(X[:, c]).max(), torch.float32)
        assert abs(X[:, c].mean(dtype=np.float64)) < bound
        assert abs(X[:, c].std(dtype=np.float64) - 1) < bound
    # The same stream for every seed: nothing is drawn, one copy is held.
    args = dict(name="split-cifar100", n_tasks=10, data_home=tmp_path, train_size=None)
    first, second = seed_streams(args, [0, 1], None)
    assert first is second and first.n_tasks == 10
    with pytest.raises(ValueError, match="n_tasks dividing its 100 classes"):
        load_stream("split-cifar100", data_home=tmp_path, n_tasks=7)


def test_seq_cifar10_is_scored_class_and_task_incrementally(tmp_path):
    write_cifar(tmp_path, "cifar-10-batches-bin", 5, 2)
    stream = load_stream("seq-cifar10", data_home=tmp_path, holdout=10)
    assert not stream.multi_head and stream.regime == "seq-cifar10"
    assert [c.tolist() for c in stream.task_classes] == [
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
        [8, 9],
    ]
    # holdout: the last image of each class, evaluated instead of the test set.
    assert [len(stream.task(k)[1]) for k in range(5)] == [8] * 5
    assert sorted(stream.y_test) == list(range(10))


def test_image_presets_follow_table_2():
    naive = strategy_params("naive", "split-cifar100", {}, n_tasks=20, n_classes=100)
    assert naive["module"] is ReducedResNet18
    assert (naive["lr"], naive["batch_size"], naive["momentum"]) == (0.01, 10, 0.8)
    stable = strategy_params("stable-sgd", "split-cifar100", {}, n_classes=100)
    assert (stable["lr"], stable["lr_decay"], stable["module__dropout"]) == (
        0.08,
        0.8,
        0.5,
    )
    ewc = strategy_params("ewc", "split-cifar100", {}, n_classes=100)
    assert ewc["penalty"].lam == 10.0 and (ewc["lr"], ewc["momentum"]) == (0.03, 0.0)
    er = strategy_params("er", "split-cifar100", {}, n_tasks=20, n_classes=100)
    assert (er["replay"].memory_size, er["replay"].memory_batch_size) == (100, 10)
    agem = strategy_params("agem", "split-cifar100", {"memory_size": 2}, n_classes=100)
    assert agem["replay"].memory_size == 2 and agem["lr"] == 0.03
    seq = strategy_params("er", "seq-tiny-imagenet", {"lr": 0.05}, n_classes=200)
    assert seq["module"] is ResNet18 and seq["replay"].memory_size == 200
    assert seq["lr"] == 0.05
    with pytest.raises(ValueError, match="si has no preset on split-cifar100"):
        strategy_params("si", "split-cifar100", {}, n_classes=100)
    with pytest.raises(ValueError, match="--hidden sets an MLP's hidden layers"):
        strategy_params("naive", "seq-cifar10", {"hidden": (100,)}, n_classes=10)


def test_benchmark_runs_split_cifar100(tmp_path, capsys):
    write_cifar(tmp_path, "cifar-100-binary", 2, 1)
    args = ["benchmark", "--stream", "split-cifar100", "--data-home", str(tmp_path)]
    args += ["--n-tasks", "2", "--seeds", "1", "--strategies", "naive,er"]
    args += ["--output", str(tmp_path / "out"), "--no-plots", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "split-cifar100: task-incremental, one head per task; 2 tasks"
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    runs = results["runs"] if isinstance(results, dict) else results
    assert {run["strategy"] for run in runs} == {"naive", "er"}


def test_offline_image_stream_names_data_home_and_skcl_data(
    tmp_path, capsys, monkeypatch
):
    import skcl.datasets._archives as archives

    def offline(url, timeout=None):
        raise OSError("no network")

    monkeypatch.setattr(archives, "urlopen", offline)
    args = ["benchmark", "--stream", "seq-cifar10", "--data-home", str(tmp_path)]
    assert main([*args, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "skcl benchmark: error: seq-cifar10 needs the archive cifar-10-binary.tar.gz"
    )
    assert "pass --data-home <folder with the archive> or set SKCL_DATA" in err
    assert str(tmp_path) in err and "no network" in err
    assert os.listdir(tmp_path) == []


def test_seq_tiny_imagenet_from_its_jpegs(tmp_path):
    image = pytest.importorskip("PIL.Image")
    root = tmp_path / "tiny-imagenet-200"
    wnids = [f"n{i:02d}" for i in range(4)]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids))
    (root / "words.txt").write_text("\n".join(f"{w}\tclass {w}" for w in wnids))
    rng = np.random.RandomState(0)

    def jpeg(path):
        pixels = rng.randint(0, 256, (64, 64, 3)).astype(np.uint8)
        image.fromarray(pixels).save(path, format="JPEG")

    for wnid in wnids:
        (root / "train" / wnid / "images").mkdir(parents=True)
        for i in range(3):
            jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
        jpeg(root / "val" / "images" / f"val_{wnid}.JPEG")
    (root / "val" / "val_annotations.txt").write_text(
        "\n".join(f"val_{w}.JPEG\t{w}\t0\t0\t63\t63" for w in reversed(wnids))
    )
    stream = load_stream("seq-tiny-imagenet", data_home=tmp_path, n_tasks=2)
    assert not stream.multi_head and stream.regime == "seq-tiny-imagenet"
    assert [c.tolist() for c in stream.task_classes] == [[0, 1], [2, 3]]
    X, y = stream.task(1)
    assert X.shape == (6, 3, 64, 64) and sorted(y) == [2, 2, 2, 3, 3, 3]
    np.testing.assert_array_equal(stream.t_test, [0, 0, 1, 1])
    assert (tmp_path / "tiny-imagenet-200.npz").is_file()
