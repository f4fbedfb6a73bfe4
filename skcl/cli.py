"""The ``skcl`` command line: ``skcl benchmark`` runs strategies on a stream."""

import argparse
import sys
import time

from ._benchmark import OVERRIDES, REGIMES, STRATEGIES, STREAMS, strategy_params


def _list(kind, choices=None):
    def parse(text):
        items = [item.strip() for item in text.split(",") if item.strip()]
        try:
            values = [kind(item) for item in items]
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"invalid list {text!r}: {error}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError("the list is empty")
        unknown = [v for v in values if choices is not None and v not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {unknown}; choose from {', '.join(choices)}"
            )
        return values

    return parse


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _dropout(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="skcl", description="Continual learning with scikit-learn and PyTorch."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser(
        "benchmark",
        help="run continual-learning strategies on a stream and report",
        description=(
            "Train each strategy on a stream of tasks and report average accuracy, "
            "forgetting, backward transfer, learning accuracy and training time "
            "(mean ± std over seeds), as a table and as files in --output."
        ),
    )
    bench.add_argument("--stream", choices=STREAMS, default="permuted-digits")
    bench.add_argument(
        "--n-tasks", type=_positive(int), help="default: 5 (digits), 20 (MNIST)"
    )
    bench.add_argument(
        "--strategies",
        type=_list(str, STRATEGIES),
        default=list(STRATEGIES),
        help=f"comma-separated, from: {', '.join(STRATEGIES)} (default: all)",
    )
    bench.add_argument(
        "--seeds",
        type=_positive(int),
        default=3,
        help="number of seeds, each drawing its own tasks (default: 3)",
    )
    bench.add_argument(
        "--stream-seed",
        type=int,
        help="draw the tasks once with this seed for every seed, which then "
        "varies only the initialization and sample order; a strategy's seeds "
        "then train together as one stacked network where they can",
    )
    bench.add_argument("--lr", type=_positive(float))
    bench.add_argument("--lr-decay", type=_positive(float))
    bench.add_argument("--batch-size", type=_positive(int))
    bench.add_argument("--dropout", type=_dropout)
    bench.add_argument("--epochs", type=_positive(int), help="epochs per task")
    bench.add_argument("--momentum", type=float)
    bench.add_argument(
        "--lam",
        type=_positive(float),
        help="penalty strength (lwf: the distillation's weight)",
    )
    bench.add_argument(
        "--memory-size",
        type=_positive(int),
        help="replay memory: for er, der++ and the +er strategies the samples "
        "kept (default: 1 per class and task on MNIST, 2 on the digits); for "
        "agem the samples per class and task (default: 1 on MNIST, 2 on the "
        "digits)",
    )
    bench.add_argument(
        "--penalty-step",
        choices=("implicit", "explicit"),
        help="how the penalties enter each step (default: implicit, never diverges)",
    )
    bench.add_argument(
        "--hidden", type=_list(int), help="hidden layer sizes, e.g. 256,256"
    )
    bench.add_argument("--data-home", help="folder with the MNIST IDX files")
    bench.add_argument(
        "--train-size", type=_positive(int), help="MNIST images per task"
    )
    bench.add_argument("--output", default="skcl_benchmark", help="folder for results")
    bench.add_argument("--n-jobs", type=int, default=1, help="runs in parallel")
    bench.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
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


def _benchmark(args):
    import torch

    from ._benchmark import (
        cached_stream,
        format_divergences,
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
    start = time.perf_counter()
    stream = cached_stream(**stream_args, seed=args.stream_seed or 0)
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
    print(
        f"{stream.name}: {stream.n_tasks} tasks, {len(args.strategies)} strategies, "
        f"{args.seeds} seed(s)",
        flush=True,
    )
    results = _run_seeds_together(args, stream_args, params)
    results.sort(key=lambda r: args.strategies.index(r["strategy"]))
    rows = summarize(results, args.strategies)
    print(format_table(rows))
    divergences = format_divergences(results, params)
    if divergences:
        print(divergences)
    config = {
        **{k: v for k, v in vars(args).items() if k != "command"},
        "regime": REGIMES[stream.regime],
    }
    paths = write_files(results, rows, _jsonable(config), args.output)
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
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from ._benchmark import run_seeds_in_worker, run_seeds_together, seed_streams

    seeds = list(range(args.seeds))
    if args.n_jobs == 1:
        streams = seed_streams(stream_args, seeds, args.stream_seed)
        groups = []
        for strategy in args.strategies:
            with tqdm(
                total=streams[0].n_tasks,
                desc=f"{strategy} ({len(seeds)} seeds)",
                disable=args.quiet,
                leave=False,
            ) as bar:
                groups.append(
                    run_seeds_together(
                        streams, strategy, params[strategy], seeds, progress=bar.update
                    )
                )
    else:
        jobs = Parallel(n_jobs=args.n_jobs, return_as="generator")(
            delayed(run_seeds_in_worker)(
                stream_args, strategy, params[strategy], seeds, args.stream_seed
            )
            for strategy in args.strategies
        )
        groups = list(
            tqdm(
                jobs, total=len(args.strategies), desc="strategies", disable=args.quiet
            )
        )
    for strategy, (_, reason) in zip(args.strategies, groups, strict=True):
        if reason is not None and len(seeds) > 1:
            print(f"{strategy}: the seeds trained one by one: {reason}.", flush=True)
    return [result for results, _ in groups for result in results]


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
