import json


def test_tuning_picks_the_most_accurate_candidate(
    tmp_path, capsys, monkeypatch, benchmark_script
):
    tune = benchmark_script("tune_regimes")
    monkeypatch.setitem(tune.GRIDS, "ewc", tune._lams(0.1, 100.0))
    output = tmp_path / "tuning.json"
    tune.main(
        [
            "--stream", "permuted-digits", "--n-tasks", "2", "--strategies", "ewc",
            "--n-jobs", "1", "--seed", "3", "--output", str(output),
        ]
    )  # fmt: skip
    runs = json.loads(output.read_text())["runs"]
    accuracies = [run["average_accuracy"] for run in runs]
    assert [run["seed"] for run in runs] == [3, 3]
    best = json.loads(output.read_text())["best"]["ewc"]
    assert best[0] == {"lam": [0.1, 100.0][accuracies.index(max(accuracies))]}
    assert "seed 3, scored on test images" in capsys.readouterr().out


def test_batch_size_reaches_every_candidate(capsys, monkeypatch, benchmark_script):
    tune = benchmark_script("tune_regimes")
    seen = []

    def fake_run(stream_args, strategy, params, seed):
        seen.append(params["batch_size"])
        return dict(average_accuracy=0.5, forgetting=0.1, diverged=False, seed=seed)

    monkeypatch.setattr(tune, "run_in_worker", fake_run)
    tune.main(
        [
            "--stream", "permuted-digits", "--n-tasks", "2", "--n-jobs", "1",
            "--strategies", "stable-sgd", "--batch-size", "7",
        ]
    )  # fmt: skip
    assert seen == [7] * len(tune.GRIDS["stable-sgd"])
    assert "batch size 7" in capsys.readouterr().out


def test_lams_replace_the_penalties_grids(capsys, monkeypatch, benchmark_script):
    tune = benchmark_script("tune_regimes")
    seen = []

    def fake_run(stream_args, strategy, params, seed):
        seen.append((strategy, params["penalty"].lam if "penalty" in params else None))
        return dict(average_accuracy=0.5, forgetting=0.1, diverged=False, seed=seed)

    monkeypatch.setattr(tune, "run_in_worker", fake_run)
    tune.main(
        [
            "--stream", "permuted-digits", "--n-tasks", "2", "--n-jobs", "1",
            "--strategies", "ewc,stable-sgd+ewc", "--lams", "1e3,1e5",
        ]
    )  # fmt: skip
    assert seen == [
        ("ewc", 1e3),
        ("ewc", 1e5),
        ("stable-sgd+ewc", 1e3),
        ("stable-sgd+ewc", 1e5),
    ]
