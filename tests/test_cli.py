import json
import subprocess
import sys

import pytest

from skcl._benchmark._presets import STRATEGIES, strategy_params
from skcl.cli import main
from skcl.penalties import EWC


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
    assert (tmp_path / "accuracy_matrix_ewc.png").stat().st_size > 0
    assert (tmp_path / "task_accuracy.png").stat().st_size > 0


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
    assert {s for s in STRATEGIES if "penalty" in strategy_params(s, "digits", {})} == {
        "l2", "l2init", "ewc", "online-ewc", "si", "mas", "stable-sgd+ewc"
    }  # fmt: skip


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
            "--output", str(tmp_path), "--quiet",
        ]
    )  # fmt: skip
    assert status == 0
    assert "ewc (1 diverged)" in capsys.readouterr().out
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert runs[1]["diverged"] and not runs[0]["diverged"]
