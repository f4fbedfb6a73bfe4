"""The DER table's seeds trained stacked against one by one, in one process.

``skcl benchmark`` trains the seeds of a strategy as one stacked network when
the engine can (``run_seeds_together``). This script times, for each strategy
on one of the DER paper's streams with its preset, the three seeds stacked
and the same seeds one by one (each alone through the same function),
one after the other on the same load (the tasks built before the clock
starts), and checks that both give the same scores.

    python benchmarks/bench_der_seeds.py --stream seq-mnist --strategies naive,er
"""

import argparse
import time

import torch

from skcl._benchmark import run_seeds_together, seed_streams, strategy_params


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="seq-mnist")
    parser.add_argument("--strategies", default="naive,er")
    parser.add_argument("--memory-size", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--stream-seed", type=int, default=None)
    parser.add_argument("--data-home", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    streams = seed_streams(
        dict(name=args.stream, data_home=args.data_home), seeds, args.stream_seed
    )
    regime = streams[0].regime
    for stream in {id(s): s for s in streams}.values():  # build every task first
        for k in range(stream.n_tasks):
            stream.task(k)
    for strategy in args.strategies.split(","):
        params = strategy_params(
            strategy,
            regime,
            {"memory_size": args.memory_size},
            n_tasks=streams[0].n_tasks,
        )
        start = time.perf_counter()
        stacked, reason = run_seeds_together(streams, strategy, params, seeds)
        together = time.perf_counter() - start
        alone, one_by_one = [], 0.0
        for stream, seed in zip(streams, seeds, strict=True):
            start = time.perf_counter()
            alone += run_seeds_together([stream], strategy, params, [seed])[0]
            one_by_one += time.perf_counter() - start
        same = [a["R"] == b["R"] for a, b in zip(stacked, alone, strict=True)]
        print(
            f"{strategy}: {len(seeds)} seeds stacked {together:.1f} s"
            f"{'' if reason is None else f' (one by one: {reason})'}, "
            f"one by one {one_by_one:.1f} s, ratio {one_by_one / together:.2f}x; "
            f"same accuracy matrices: {all(same)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
