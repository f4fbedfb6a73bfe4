"""The machinery of ``skcl benchmark``: streams, strategy presets, runs, reports.

The command line, ``benchmarks/`` and the tests import these names from here.
"""

from ._presets import (
    DEFAULT_STRATEGIES,
    OVERRIDES,
    REGIMES,
    STRATEGIES,
    strategy_params,
)
from ._report import (
    format_divergences,
    format_environment,
    format_markdown,
    format_table,
    summarize,
    write_files,
    write_plots,
)
from ._runner import (
    cached_stream,
    environment,
    run_in_worker,
    run_seeds_in_worker,
    run_seeds_together,
    run_strategy,
    seed_streams,
)
from ._streams import DATA, SCENARIOS, STREAMS, load_stream, regime_of

__all__ = [
    "DATA",
    "DEFAULT_STRATEGIES",
    "OVERRIDES",
    "REGIMES",
    "SCENARIOS",
    "STRATEGIES",
    "STREAMS",
    "cached_stream",
    "environment",
    "format_divergences",
    "format_environment",
    "format_markdown",
    "format_table",
    "load_stream",
    "regime_of",
    "run_in_worker",
    "run_seeds_in_worker",
    "run_seeds_together",
    "seed_streams",
    "run_strategy",
    "strategy_params",
    "summarize",
    "write_files",
    "write_plots",
]
