"""The ``skcl`` command line: ``skcl benchmark`` runs strategies on a stream."""

import argparse
import difflib
import os
import sys
import textwrap
import time

from ._benchmark import (
    DATA,
    DEFAULT_STRATEGIES,
    OVERRIDES,
    REGIMES,
    SCENARIOS,
    STRATEGIES,
    STREAMS,
    strategy_params,
)
from ._benchmark._image_presets import IMAGE_STRATEGIES
from ._benchmark._image_streams import IMAGE_STREAMS
from ._benchmark._plasticity_presets import (
    FORGETTING_STRATEGIES,
    PLASTICITY_STRATEGIES,
    TASK_FREE,
)
from ._benchmark._plasticity_streams import PLASTICITY_STREAMS

# Every strategy --strategies accepts: the plasticity streams' have their own.
_NAMES = tuple(
    dict.fromkeys((*STRATEGIES, *PLASTICITY_STRATEGIES, *FORGETTING_STRATEGIES))
)
# The options whose value is one comma-separated list (a space splits it in two).
_LIST_OPTIONS = ("--strategies", "--hidden")
# What a parameter the presets leave unset is: the estimator's and the MLP's
# defaults (tests/test_cli.py checks them against the estimator).
_UNSET = {"lr_decay": 1.0, "module__dropout": 0.0, "penalty_step": "implicit"}


class _Parser(argparse.ArgumentParser):
    """A parser that refuses what it does not know, and says what was meant.

    argparse hands the arguments a subcommand does not know back to the top
    level, which prints the top-level usage; this one stops at once with its
    own usage and, for each stray argument, the closest option or the
    comma-separated form of a list.
    """

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(args, extras))
        return namespace, extras

    def _unrecognized(self, args, extras):
        options = [s for action in self._actions for s in action.option_strings]
        problems, cursor, skip = [], 0, set()
        for i, token in enumerate(extras):
            position = args.index(token, cursor if token in args[cursor:] else 0)
            cursor = position + 1
            if i in skip:
                continue
            if token.startswith("-") and not _is_number(token):
                flag = token.split("=")[0]
                # What argparse's prefix matching would have taken, else a typo.
                close = [o for o in options if o.startswith(flag) and len(flag) > 2]
                close = close or difflib.get_close_matches(flag, options, n=1)
                hint = f"did you mean {_or(close)}?" if close else "see --help"
                problems.append(f"unrecognized option {flag} ({hint})")
                # Its value, if any, is no second problem.
                if "=" not in token and i + 1 < len(extras):
                    if args[position + 1 : position + 2] == [extras[i + 1]]:
                        skip.add(i + 1)
                continue
            problems.append(self._stray_value(args, position, extras, i, skip))
        return "; ".join(problem for problem in problems if problem)

    def _stray_value(self, args, position, extras, i, skip):
        """Say what is wrong with the value ``args[position]`` no option took.

        None for the values of an unknown option: the option is the problem.
        """
        token = args[position]
        start = position
        while start > 0 and not (
            args[start - 1].startswith("-") and not _is_number(args[start - 1])
        ):
            start -= 1
        if start == 0:
            if token in STRATEGIES:
                return f"unexpected {token!r}: did you mean --strategies {token}?"
            if token in STREAMS:
                return f"unexpected {token!r}: did you mean --stream {token}?"
            return f"unexpected {token!r}: skcl benchmark takes only options"
        flag, *value = args[start - 1].split("=", 1)
        end = position
        while end + 1 < len(args) and not (
            args[end + 1].startswith("-") and not _is_number(args[end + 1])
        ):
            end += 1
        # The other stray values of the same run are the same problem.
        run = args[position : end + 1]
        skip.update(range(i + 1, min(len(extras), i + len(run))))
        values = value + args[start : end + 1]
        action = self._option_string_actions.get(flag)
        if action is None:  # the values of an unknown option, already named
            return None
        if action.nargs == 0:
            return f"{flag} takes no value, got {' '.join(values)}"
        if flag in _LIST_OPTIONS:
            return (
                f"{flag} takes one comma-separated list, without spaces: "
                f"{flag} {','.join(values)}"
            )
        return f"{flag} takes one value, got {' '.join(values)}"


def _or(names):
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _list(kind, choices=None):
    what = {int: "integers, e.g. 256,256", str: "names"}[kind]

    def parse(text):
        items = [item.strip() for item in text.split(",") if item.strip()]
        try:
            values = [kind(item) for item in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid list {text!r}: expected comma-separated {what}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError("the list is empty")
        unknown = [v for v in values if choices is not None and v not in choices]
        if unknown:
            close = [
                match
                for value in unknown
                for match in difflib.get_close_matches(value, choices, n=1)
            ]
            hint = f" (did you mean {','.join(close)}?)" if close else ""
            if any(" " in value for value in unknown):
                hint += " (separate the names with commas)"
            raise argparse.ArgumentTypeError(
                f"unknown {unknown}{hint}; choose from {', '.join(choices)}"
            )
        return values

    return parse


def _number(kind, *, positive=False, at_least_zero=False, below=None):
    """Parse a number of type ``kind``; say what was expected when it is not."""
    name = "integer" if kind is int else "number"
    if positive:
        what = f"a positive {name}"
    elif at_least_zero:
        what = f"a {name} >= 0" if below is None else f"a {name} in [0, {below:g})"
    else:
        what = f"an {name}" if kind is int else f"a {name}"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        if at_least_zero and (value < 0 or (below is not None and value >= below)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


def _default(text, default):
    return f"{text} (default: {default})"


def _preset(param):
    """What the strategies' presets set ``param`` to, on the digits and on MNIST."""
    families = {"digits": ("digits",), "MNIST": ("mnist-permuted", "mnist-rotated")}
    parts = []
    for family, regimes in families.items():
        values = {
            strategy_params(strategy, regime, {}, n_tasks=1).get(
                param, _UNSET.get(param)
            )
            for strategy in STRATEGIES
            for regime in regimes
        }
        parts.append((family, ", ".join(map(_format, sorted(values)))))
    if len({values for _, values in parts}) == 1:
        return parts[0][1]
    return "the strategy's preset: " + "; ".join(" ".join(part) for part in parts)


def _format(value):
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Formatter(argparse.HelpFormatter):
    """Fill each paragraph; wrap an indented line under a deeper indent.

    The list of streams under ``--help`` is made of indented lines: a name and
    its scenario, then its data, each kept on its own line.
    """

    def _fill_text(self, text, width, indent):
        lines = []
        for line in text.splitlines():
            depth = len(line) - len(line.lstrip())
            lines += textwrap.wrap(
                line.lstrip(),
                width,
                initial_indent=indent + " " * depth,
                subsequent_indent=indent + " " * depth,
            ) or [""]
        return "\n".join(lines)


def _streams_epilog():
    lines = ["streams (--stream), each with its scenario and its data:"]
    for name in STREAMS:
        lines += [f"  {name}: {SCENARIOS[name]}", f"      {DATA[name]}"]
    lines += [
        "",
        "The scenario decides what a score means: split-digits tells the network "
        "the task at test time (one head per task), class-split-digits does not.",
    ]
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="skcl",
        description="Continual learning with scikit-learn and PyTorch.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )
    bench = commands.add_parser(
        "benchmark",
        help="run continual-learning strategies on a stream and report",
        description=(
            "Train each strategy on a stream of tasks and report average accuracy, "
            "forgetting, backward transfer, learning accuracy (mean ± std over "
            "seeds) and training time (mean over seeds), as a table and as files "
            "in --output, with what the scores depend on (versions, CPU kernels, "
            "threads)."
        ),
        epilog=_streams_epilog(),
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    bench.add_argument(
        "--stream",
        choices=STREAMS,
        default="permuted-digits",
        metavar="NAME",
        help=_default("the stream of tasks, one of those listed below", "%(default)s"),
    )
    bench.add_argument(
        "--n-tasks",
        type=_number(int, positive=True),
        help=_default(
            "number of tasks",
            "5 on the digits, 2 on shared-split-mnist, 500 on "
            "plasticity-permuted-mnist, 50 on random-label-mnist, 20 on the "
            "other MNIST streams and split-cifar100, 5 on seq-cifar10, 10 on "
            "seq-tiny-imagenet",
        ),
    )
    bench.add_argument(
        "--strategies",
        type=_list(str, _NAMES),
        metavar="A,B,...",
        help=_default(
            f"comma-separated, from: {', '.join(_NAMES)}",
            f"{len(DEFAULT_STRATEGIES)}, all but "
            f"{', '.join(s for s in STRATEGIES if s not in DEFAULT_STRATEGIES)}, "
            "which run by name; "
            f"on {', '.join(IMAGE_STREAMS)} Table 2's: "
            f"{','.join(IMAGE_STRATEGIES)}; on {', '.join(PLASTICITY_STREAMS)} "
            f"the L2 Init paper's, trained without task ids: "
            f"{','.join(TASK_FREE)}, and by name on plasticity-permuted-mnist "
            f"{','.join(FORGETTING_STRATEGIES)}, told the tasks",
        ),
    )
    bench.add_argument(
        "--seeds",
        type=_number(int, positive=True),
        default=3,
        help=_default(
            "number of seeds, each a replicate of the whole experiment that "
            "draws its own tasks (unless --stream-seed)",
            "%(default)s",
        ),
    )
    bench.add_argument(
        "--stream-seed",
        type=_number(int),
        help=_default(
            "draw the tasks once with this seed for every seed, which then "
            "varies only the initialization and sample order",
            "each seed draws its own tasks",
        ),
    )
    overrides = bench.add_argument_group(
        "regime overrides",
        "Each replaces the value of every strategy's preset (the presets are "
        "tuned per family of streams; docs/benchmarks.md records how).",
    )
    overrides.add_argument(
        "--lr",
        type=_number(float, positive=True),
        help=_default("learning rate", _preset("lr")),
    )
    overrides.add_argument(
        "--lr-decay",
        type=_number(float, positive=True),
        help=_default(
            "factor on the learning rate at each new task (1: none)",
            _preset("lr_decay"),
        ),
    )
    overrides.add_argument(
        "--batch-size",
        type=_number(int, positive=True),
        help=_default("mini-batch size", _preset("batch_size")),
    )
    overrides.add_argument(
        "--dropout",
        type=_number(float, at_least_zero=True, below=1),
        help=_default(
            "dropout probability of the hidden layers", _preset("module__dropout")
        ),
    )
    overrides.add_argument(
        "--epochs",
        type=_number(int, positive=True),
        help=_default("epochs per task", _preset("max_epochs")),
    )
    overrides.add_argument(
        "--momentum",
        type=_number(float, at_least_zero=True),
        help=_default("SGD momentum", _preset("momentum")),
    )
    overrides.add_argument(
        "--hidden",
        type=_list(int),
        metavar="N,N,...",
        help=_default("hidden layer sizes", _preset("module__hidden_sizes")),
    )
    lams = ", ".join(
        f"{REGIMES[regime]['lam']['ewc']:g} {where}"
        for regime, where in (
            ("digits", "on the digits"),
            ("mnist-permuted", "on permuted MNIST"),
            ("mnist-rotated", "on rotated MNIST"),
        )
    )
    overrides.add_argument(
        "--lam",
        type=_number(float, positive=True),
        help=_default(
            "penalty strength of the penalty strategies (lwf: the "
            "distillation's weight)",
            f"the strategy's preset, e.g. ewc {lams}",
        ),
    )
    overrides.add_argument(
        "--memory-size",
        type=_number(int, positive=True),
        help=_default(
            "replay memory: for er, der++ and the +er strategies the samples "
            "kept; for agem the samples per class and task",
            "er, der++, +er: 1 per class and task on MNIST, 2 on the digits; "
            "agem: 1 on MNIST, 2 on the digits",
        ),
    )
    overrides.add_argument(
        "--penalty-step",
        choices=("implicit", "explicit"),
        help=_default(
            "how the penalties enter each step (implicit never diverges)",
            _preset("penalty_step"),
        ),
    )
    data = bench.add_argument_group("data and output")
    data.add_argument(
        "--data-home",
        metavar="FOLDER",
        help=_default(
            "folder with the four MNIST IDX files, or the CIFAR-10, CIFAR-100 or "
            "Tiny ImageNet archive (downloaded there if missing)",
            "$SKCL_DATA, else ~/skcl_data",
        ),
    )
    data.add_argument(
        "--train-size",
        type=_number(int, positive=True),
        help=_default("MNIST training images per task (image streams: in all)", "all"),
    )
    data.add_argument(
        "--output",
        default="skcl_benchmark",
        metavar="FOLDER",
        help=_default("folder for results", "%(default)s"),
    )
    data.add_argument(
        "--n-jobs",
        type=_number(int),
        default=1,
        help=_default("strategies run in parallel (-1: one per core)", "%(default)s"),
    )
    data.add_argument(
        "--no-plots",
        action="store_true",
        help=_default("skip the PNG plots", "plots if matplotlib is installed"),
    )
    data.add_argument(
        "--quiet",
        action="store_true",
        help=_default("no progress bar", "one bar over the strategies"),
    )
    data.add_argument(
        "--verbose",
        action="store_true",
        help=_default("print each run's scores as it ends", "only the table"),
    )
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _benchmark(args)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"skcl benchmark: error: {error}", file=sys.stderr)
        return 1


def _header(stream, args):
    """The first line of the output: what the stream is and what runs on it."""
    n = len(args.strategies)
    return (
        f"{stream.name}: {SCENARIOS[args.stream]}; "
        f"{_count(stream.n_tasks, 'task')}, "
        f"{_count(n, 'strategy', 'strategies')}, {_count(args.seeds, 'seed')}"
    )


def _count(n, one, many=None):
    return f"{n} {one if n == 1 else many or one + 's'}"


def _load_first_stream(stream_args, seed):
    from ._benchmark import cached_stream

    try:
        return cached_stream(**stream_args, seed=seed)
    except OSError as error:
        if stream_args["name"].endswith("digits"):
            raise
        folder = (
            stream_args["data_home"]
            or os.environ.get("SKCL_DATA")
            or os.path.join("~", "skcl_data")
        )
        if stream_args["name"] in IMAGE_STREAMS:
            archive = IMAGE_STREAMS[stream_args["name"]][-1]
            raise OSError(
                f"{stream_args['name']} needs the archive {archive} (or the folder "
                f"it extracts to) in {folder}: pass --data-home <folder with the "
                "archive> or set SKCL_DATA=<folder>, or run once with internet "
                f"access to download it there.\n{error}"
            ) from error
        raise OSError(
            f"{stream_args['name']} needs the four MNIST IDX files "
            "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz), not all in "
            f"{folder} or its mnist/ folder: pass --data-home <folder with the "
            "files> or set SKCL_DATA=<folder>, or run once with internet access "
            f"to download them there.\n{error}"
        ) from error


def _benchmark(args):
    import torch

    from ._benchmark import (
        environment,
        format_divergences,
        format_environment,
        format_table,
        summarize,
        write_files,
        write_plots,
    )

    torch.set_num_threads(1)
    stream_args = dict(
        name=args.stream,
        n_tasks=args.n_tasks,
        data_home=args.data_home,
        train_size=args.train_size,
    )
    overrides = {k: getattr(args, k) for k in (*OVERRIDES, "lam", "memory_size")}
    if overrides["hidden"] is not None:
        overrides["hidden"] = tuple(overrides["hidden"])
    if args.strategies is None:
        image = args.stream in IMAGE_STREAMS
        args.strategies = list(IMAGE_STRATEGIES if image else DEFAULT_STRATEGIES)
        if args.stream in PLASTICITY_STREAMS:
            args.strategies = list(PLASTICITY_STRATEGIES)
    start = time.perf_counter()
    stream = _load_first_stream(stream_args, args.stream_seed or 0)
    params = {
        strategy: strategy_params(
            strategy,
            stream.regime,
            overrides,
            n_tasks=stream.n_tasks,
            n_classes=len(stream.classes),
        )
        for strategy in args.strategies
    }
    env = environment()
    print(_header(stream, args), flush=True)
    print(format_environment(env), flush=True)
    results = _run_seeds_together(args, stream_args, params)
    results.sort(key=lambda r: args.strategies.index(r["strategy"]))
    rows = summarize(results, args.strategies)
    print(format_table(rows))
    if rows and "task_il_accuracy" in rows[0]:
        print("task-incremental accuracy (argmax over each task's classes):")
        for row in rows:
            print(
                f"  {row['strategy']}: {row['task_il_accuracy']:.3f} ± "
                f"{row['task_il_accuracy_std']:.3f}"
            )
    seconds = time.perf_counter() - start
    divergences = format_divergences(results, params)
    if divergences:
        print(divergences)
    config = {
        **{k: v for k, v in vars(args).items() if k != "command"},
        "scenario": SCENARIOS[args.stream],
        "regime": REGIMES[stream.regime],
    }
    paths = write_files(
        results, rows, _jsonable(config), args.output, environment=env, seconds=seconds
    )
    if not args.no_plots:
        try:
            paths += write_plots(results, rows, args.output, stream=stream.name)
        except ImportError:
            print("(no plots: pip install matplotlib, or skcl[plots], to get them)")
    elapsed = time.perf_counter() - start
    print(f"wrote {len(paths)} files to {args.output}/ in {elapsed:.0f} s:")
    for path in paths:
        print(f"  {path}")
    return 0


def _run_seeds_together(args, stream_args, params):
    """Train every strategy, its seeds together; one progress bar for them all."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from ._benchmark import run_seeds_in_worker, run_seeds_together, seed_streams

    seeds = list(range(args.seeds))
    bar = tqdm(
        total=len(args.strategies),
        desc="strategies",
        unit="strategy",
        disable=args.quiet,
    )

    def report(strategy, group):
        bar.update()
        if args.verbose:
            for run in group[0]:
                bar.write(_run_line(run))

    groups = []
    with bar:
        if args.n_jobs == 1:
            streams = seed_streams(stream_args, seeds, args.stream_seed)
            n_tasks = streams[0].n_tasks
            for strategy in args.strategies:
                done = [0]

                def progress(strategy=strategy, done=done):
                    done[0] += 1
                    bar.set_postfix_str(f"{strategy}, task {done[0]}/{n_tasks}")

                bar.set_postfix_str(strategy)
                groups.append(
                    run_seeds_together(
                        streams, strategy, params[strategy], seeds, progress=progress
                    )
                )
                report(strategy, groups[-1])
        else:
            jobs = Parallel(n_jobs=args.n_jobs, return_as="generator")(
                delayed(run_seeds_in_worker)(
                    stream_args, strategy, params[strategy], seeds, args.stream_seed
                )
                for strategy in args.strategies
            )
            for strategy, group in zip(args.strategies, jobs, strict=True):
                groups.append(group)
                report(strategy, group)
    for strategy, (_, reason) in zip(args.strategies, groups, strict=True):
        if reason is not None and len(seeds) > 1:
            print(f"{strategy}: the seeds trained one by one: {reason}.", flush=True)
    return [result for results, _ in groups for result in results]


def _run_line(run):
    """One run's scores, for --verbose."""
    where = f"{run['strategy']}, seed {run['seed']}"
    if run["diverged"]:
        return f"{where}: diverged in task {run['diverged_task']}"
    if "total_online_accuracy" in run:
        return (
            f"{where}: online accuracy {run['total_online_accuracy']:.3f}, "
            f"backward transfer {run['backward_transfer']:.3f}, {run['seconds']:.1f} s"
        )
    return (
        f"{where}: accuracy {run['average_accuracy']:.3f}, "
        f"forgetting {run['forgetting']:.3f}, {run['seconds']:.1f} s"
    )


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


if __name__ == "__main__":
    sys.exit(main())
