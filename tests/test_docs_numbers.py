"""The numbers the README and docs/ state about ``skcl benchmark`` are the code's.

Counts (strategies, streams, tasks, seeds) and the preset regime come from
the benchmark's registry (``skcl._benchmark``) and the command line's
defaults; scores and times from one recorded run of the default benchmark,
``docs/results/permuted-digits.json`` (the ``results.json`` of a plain
``skcl benchmark``). When the registry changes, these tests name the page and
the number to update, or ask for the run to be recorded again.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from skcl._benchmark import (
    DEFAULT_STRATEGIES,
    REGIMES,
    STREAMS,
    format_markdown,
    load_stream,
    strategy_params,
)
from skcl.cli import _jsonable, build_parser

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
RECORD = RESULTS / "permuted-digits.json"
# Each recorded run and the heading of the docs/benchmarks.md section whose
# command and table it is.
SECTIONS = {
    "permuted-digits.json": "## `skcl benchmark` on the embedded digits",
    "class-split-digits.json": "### Class-incremental split digits",
}
RERUN = (
    "record the run again: the command of its section in docs/benchmarks.md "
    "with `--output <dir>`; copy <dir>/results.json to docs/results/ and the "
    "PNGs the section shows to docs/images/"
)
_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty "
    "twenty-one twenty-two twenty-three twenty-four twenty-five"
).split()
# How the prose names each strategy of the registry, in the registry's order;
# the joint strategies close the list as one phrase.
NAMES = {
    "naive": "plain SGD",
    "l2": "L2",
    "l2init": "L2 Init",
    "ewc": "EWC",
    "online-ewc": "online EWC",
    "si": "SI",
    "mas": "MAS",
    "stable-sgd": "Stable SGD",
    "stable-sgd+ewc": "Stable SGD + EWC",
    "er": "ER",
    "agem": "A-GEM",
    "der++": "DER++",
    "der": "DER",
    "er-ace": "ER-ACE",
    "gem": "GEM",
    "gdumb": "GDumb",
    "icarl": "iCaRL",
    "bic": "BiC",
    "lwf": "LwF",
    "stable-sgd+er": "Stable SGD + ER",
    "ewc+er": "EWC + ER",
}
JOINT = {"joint", "joint-budget"}
JOINT_PHRASE = "and multi-task training on all the data and on one task's budget"


def listed(strategies):
    """How the front pages list ``strategies``: names, then the joint ones."""
    unnamed = [s for s in strategies if s not in NAMES and s not in JOINT]
    assert not unnamed, f"add {unnamed} to NAMES in tests/test_docs_numbers.py"
    assert JOINT <= set(strategies), "the front pages' list ends with joint"
    names = [NAMES[s] for s in strategies if s not in JOINT]
    return ", ".join([*names, JOINT_PHRASE])


def _text(path):
    # One line per paragraph's worth: line breaks inside sentences become spaces.
    return re.sub(r"\s+", " ", (ROOT / path).read_text())


def _number(word):
    return int(word) if word.isdigit() else _WORDS.index(word.lower())


@pytest.fixture(scope="module")
def record():
    return json.loads(RECORD.read_text())


@pytest.fixture(scope="module")
def defaults():
    args = build_parser().parse_args(["benchmark"])
    stream = load_stream(args.stream)
    return dict(
        stream=args.stream,
        strategies=list(args.strategies or DEFAULT_STRATEGIES),
        seeds=args.seeds,
        n_tasks=stream.n_tasks,
        regime=stream.regime,
    )


def test_the_recorded_default_run_is_todays_default_benchmark(record, defaults):
    config = record["config"]
    assert config["strategies"] == defaults["strategies"], RERUN
    assert (config["stream"], config["seeds"]) == (
        defaults["stream"],
        defaults["seeds"],
    ), RERUN
    overrides = ("n_tasks", "lr", "lr_decay", "batch_size", "dropout", "epochs")
    overrides += ("hidden", "momentum", "lam", "memory_size", "stream_seed")
    assert all(config[key] is None for key in overrides), "not the default run"
    assert [row["strategy"] for row in record["summary"]] == defaults["strategies"]
    assert {row["n_seeds"] for row in record["summary"]} == {defaults["seeds"]}
    for run in record["runs"]:
        assert len(run["R"][-1]) == defaults["n_tasks"]


def _section(heading):
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert heading in text, f"docs/benchmarks.md has no section {heading!r}"
    return re.split(r"\n#+ ", text.split(heading, 1)[1], maxsplit=1)[0]


def test_every_recorded_run_has_its_section():
    assert sorted(path.name for path in RESULTS.glob("*.json")) == sorted(SECTIONS)


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_each_section_shows_the_command_and_table_of_its_recorded_run(name):
    recorded = json.loads((RESULTS / name).read_text())
    section = _section(SECTIONS[name])
    command = re.search(r"```bash\n(skcl benchmark.*?)\n```", section, re.DOTALL)[1]
    args = build_parser().parse_args(command.replace("\\\n", " ").split()[1:])
    if args.strategies is None:
        args.strategies = list(DEFAULT_STRATEGIES)
    for key, value in vars(args).items():
        if key not in ("command", "output", "quiet", "verbose", "no_plots", "n_jobs"):
            assert recorded["config"][key] == value, (name, key, RERUN)
    assert recorded["config"]["regime"] == _jsonable(
        REGIMES[load_stream(args.stream).regime]
    ), RERUN
    table = re.search(r"^\|.*?(?=\n\n)", section, re.MULTILINE | re.DOTALL)[0]
    expected = format_markdown(recorded["summary"])
    assert table == expected, f"{SECTIONS[name]}'s table should be:\n{expected}"
    counts = {"strategies": len(recorded["summary"]), "runs": len(recorded["runs"])}
    for seconds, count, what in re.findall(r"(\d+) s for the (\d+) (\w+)", section):
        assert int(seconds) == round(recorded["wall_seconds"]), (name, RERUN)
        assert int(count) == counts[what], (name, what)
    env = recorded["environment"]
    for key in ("skcl", "torch", "sklearn", "numpy", "python", "cpu_capability"):
        assert env[key], key
    assert env["torch_threads"] == 1 and env["dtype"] == "float32"


def test_the_digits_scores_quoted_in_the_guide_are_the_recorded_ones(record):
    """``choosing.rst`` quotes some rows as "name accuracy / forgetting"."""
    text = _text("docs/user_guide/choosing.rst")
    paragraph = re.search(r"on five permuted digits tasks(.*?)in memory", text)[1]
    names = sorted(NAMES.values(), key=len, reverse=True)
    pattern = "(" + "|".join(map(re.escape, names)) + r") (0\.\d{3}) / (0\.\d{3})"
    quoted = re.findall(pattern, paragraph)
    assert len(quoted) >= 4, paragraph
    strategy = {name: key for key, name in NAMES.items()}
    rows = {row["strategy"]: row for row in record["summary"]}
    for name, accuracy, forgetting in quoted:
        row = rows[strategy[name]]
        recorded = (f"{row['average_accuracy']:.3f}", f"{row['forgetting']:.3f}")
        assert (accuracy, forgetting) == recorded, f"choosing.rst quotes {name}"


def test_the_class_split_scores_quoted_in_the_guide_are_the_recorded_ones():
    """Quoted as "name (accuracy)" or "name (accuracy / forgetting)"."""
    recorded = json.loads((RESULTS / "class-split-digits.json").read_text())
    rows = {row["strategy"]: row for row in recorded["summary"]}
    text = _text("docs/user_guide/choosing.rst")
    paragraph = re.search(
        r"The class-incremental split of the digits(.*?)\. A-GEM", text
    )
    strategy = {name: key for key, name in NAMES.items()} | {"joint training": "joint"}
    names = "|".join(map(re.escape, sorted(strategy, key=len, reverse=True)))
    quoted = re.findall(
        rf"({names}) \((0\.\d{{3}})(?: / (0\.\d{{3}}))?\)", paragraph[1]
    )
    assert len(quoted) >= 7, paragraph[1]
    for name, accuracy, forgetting in quoted:
        row = rows[strategy[name]]
        assert accuracy == f"{row['average_accuracy']:.3f}", name
        assert forgetting in ("", f"{row['forgetting']:.3f}"), name


@pytest.mark.parametrize("page", ["README.md", "docs/getting_started.rst"])
def test_the_front_pages_count_and_name_what_the_default_run_trains(
    page, defaults, record
):
    text = _text(page)
    claim = re.search(
        r"([\w-]+) strategies \((.*?)\) on (\w+) permuted(?:-digits)? tasks.*?"
        r"(\w+) seeds each.*? in about (\d+) seconds",
        text,
    )
    assert claim, f"{page} no longer describes the default run"
    strategies, names, tasks, seeds, seconds = claim.groups()
    assert _number(strategies) == len(defaults["strategies"]), page
    assert names == listed(defaults["strategies"]), page
    assert _number(tasks) == defaults["n_tasks"], page
    assert _number(seeds) == defaults["seeds"], page
    assert int(seconds) == round(record["wall_seconds"], -1), page


def test_the_benchmarks_page_describes_the_recorded_run(record, defaults):
    text = _text("docs/benchmarks.md")
    section = text.split("## `skcl benchmark` on the embedded digits", 1)[1]
    section = section.split("| strategy |", 1)[0]
    base = REGIMES[defaults["regime"]]["base"]
    hidden = "-".join(map(str, (64, *base["module__hidden_sizes"], 10)))
    assert f"MLP {hidden}, batch size {base['batch_size']}," in section
    epochs = re.search(r"(\w+) epochs per task", section)[1]
    assert _number(epochs) == base["max_epochs"]
    assert f"SGD with momentum {base['momentum']:g}" in section
    seeds = re.search(r"; (\w+) seeds, each drawing", section)[1]
    assert _number(seeds) == defaults["seeds"]
    tasks = re.search(r"``` (\w+) permuted tasks", section)[1]
    assert _number(tasks) == defaults["n_tasks"]
    seconds, count = re.search(r"(\d+) s for the (\d+) strategies", section).groups()
    assert int(count) == len(defaults["strategies"])
    assert int(seconds) == round(record["wall_seconds"])
    per_class = REGIMES[defaults["regime"]]["replay"]["per_class"]
    er = strategy_params("er", defaults["regime"], {}, n_tasks=defaults["n_tasks"])
    assert (
        f"keep {per_class} samples per class and task (a reservoir of "
        f"{er['replay'].memory_size} for ER" in section
    )
    env = record["environment"]
    assert f"torch {env['torch']}" in section and env["cpu"] in section
    assert f"{env['cpu_capability']} kernels" in section


def test_the_performance_page_quotes_the_recorded_time(record):
    text = _text("docs/performance.md")
    seconds = re.search(r"`skcl benchmark` with no arguments: (\d+) s", text)[1]
    assert int(seconds) == round(record["wall_seconds"])


def test_the_readme_lists_every_stream():
    text = _text("README.md")
    listed = re.search(r"--help` lists the streams \((.*?)\), each with its", text)[1]
    assert re.findall(r"`([a-z][\w-]*)`", listed) == list(STREAMS)


def test_the_recorded_means_are_the_means_of_its_runs(record):
    """The recorded file is whole: its summary is the mean of its runs."""
    for row in record["summary"]:
        runs = [r for r in record["runs"] if r["strategy"] == row["strategy"]]
        values = np.array([r["average_accuracy"] for r in runs])
        assert row["average_accuracy"] == float(values.mean())  # the same sum


@pytest.mark.slow
def test_the_recorded_run_reproduces_bitwise_where_it_was_recorded(record, tmp_path):
    """Same versions, CPU and kernels: every accuracy matrix equal, bit for bit.

    Elsewhere the scores move (docs/benchmarks.md measures how far), and the
    test says what differs.
    """
    from skcl._benchmark import environment
    from skcl.cli import main

    here, there = environment(), record["environment"]
    keys = ("skcl", "torch", "sklearn", "skorch", "numpy", "cpu", "cpu_capability")
    differ = {key: (there[key], here[key]) for key in keys if here[key] != there[key]}
    for key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR"):
        pair = (there["kernel_settings"].get(key), here["kernel_settings"].get(key))
        if pair[0] != pair[1]:
            differ[key] = pair
    if differ:
        pytest.skip(f"not the recording's environment (recorded, here): {differ}")
    assert main(["benchmark", "--output", str(tmp_path), "--no-plots", "--quiet"]) == 0
    rerun = json.loads((tmp_path / "results.json").read_text())
    assert [r["R"] for r in rerun["runs"]] == [r["R"] for r in record["runs"]], RERUN
