import numpy as np
import pytest

from skcl.metrics import average_accuracy, forgetting, learning_accuracy


def seed_0_rows(output):
    """The accuracy, forgetting and learning accuracy of seed 0, by run."""
    return {
        line.split()[0]: [float(v) for v in line.split()[2:5]]
        for line in output.splitlines()
        if line.split()[0] in ("loop", "skcl") and line.split()[1] == "0"
    }


@pytest.fixture
def reference_loop(benchmark_script):
    return benchmark_script("reference_loop")


def test_hand_computed_scores_equal_skcl_metrics(reference_loop):
    R = np.random.RandomState(0).uniform(size=(5, 5))
    expected = (average_accuracy(R), forgetting(R), learning_accuracy(R))
    np.testing.assert_allclose(reference_loop.scores(R), expected)


@pytest.mark.parametrize("options", [[], ["--test-dropout", "--unshuffled"]])
def test_loop_and_skcl_both_learn_the_stream(reference_loop, capsys, options):
    reference_loop.main(
        [
            "--stream", "permuted-digits", "--n-tasks", "2", "--strategy",
            "stable-sgd", "--seeds", "1", "--n-jobs", "1", *options,
        ]
    )  # fmt: skip
    rows = seed_0_rows(capsys.readouterr().out)
    assert set(rows) == {"loop", "skcl"}
    for accuracy, _, learning in rows.values():
        assert 0.5 < accuracy <= learning + 0.2 and learning > 0.7


@pytest.mark.parametrize("strategy", ["er", "agem"])
def test_replay_loop_and_skcl_both_learn_the_stream(reference_loop, capsys, strategy):
    reference_loop.main(
        [
            "--stream", "permuted-digits", "--n-tasks", "2", "--strategy",
            strategy, "--seeds", "1", "--n-jobs", "1",
        ]
    )  # fmt: skip
    rows = seed_0_rows(capsys.readouterr().out)
    assert set(rows) == {"loop", "skcl"}
    for accuracy, _, learning in rows.values():
        assert accuracy > 0.3 and learning > 0.3
