"""A chunk's random numbers: the estimators' own generators, never torch's global one.

Each chunk of each estimator draws from its own CPU ``torch.Generator``,
seeded from the estimator's ``random_state``: the batch order from one, and
everything else (dropout masks, the plug-ins' draws through
``net.generator_``) from another, in program order. Code that can only draw
from torch's global generator (a module's own dropout or ``torch.rand``
outside the batched kernels, a layer's ``reset_parameters``, building the
network) runs inside :func:`drawing_globally`: under one process-wide lock,
with the global generator forked and loaded with the estimator's generator
state. Fits in threads then draw what they draw in turn, and the global
generator is left as it was.
"""

import contextlib
import threading

import torch

# Held while code that draws from torch's global generator runs for an estimator.
_GLOBAL_DRAWS = threading.RLock()


@contextlib.contextmanager
def drawing_globally(generator, device=None):
    """Let the block draw from torch's global generator as if from ``generator``.

    Under a process-wide lock, the global CPU generator is forked and holds
    ``generator``'s state; afterwards ``generator`` holds the state the
    block left and the global generator is back as it was. On a CUDA
    ``device`` its generator is forked too and seeded from ``generator``.
    Inside a block that already draws globally for ``generator``
    (``generator is torch.default_generator``), or for None (a hook called
    by hand, outside a chunk: the global generator itself), it only runs
    the block.
    """
    with _GLOBAL_DRAWS:
        if generator is None or generator is torch.default_generator:
            yield
            return
        cuda = device is not None and torch.device(device).type == "cuda"
        if cuda:
            index = torch.device(device).index
            index = torch.cuda.current_device() if index is None else index
        with torch.random.fork_rng(devices=[index] if cuda else []):
            default = torch.default_generator
            default.set_state(generator.get_state())
            if cuda:
                seed = int(torch.randint(2**63 - 1, (), generator=default))
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
            try:
                yield
            finally:
                generator.set_state(default.get_state())


def run_each(generators, calls, check=True):
    """Run ``calls``, one per candidate with its generator in ``generators``:
    candidates that share one generator object (seeded alike) through
    :func:`run_alike`, the others in turn; return what they return."""
    if len(calls) > 1 and all(g is generators[0] for g in generators):
        return run_alike(generators[0], calls, check)
    return [call() for call in calls]


def run_alike(generator, calls, check=True):
    """Run each of ``calls`` (no arguments) from one state of a shared ``generator``.

    Candidates seeded alike share one generator: each call starts from the
    state the first one started from, and returns what it returns. With
    ``check``, every call that returns must leave the generator in one
    state, which the stream goes on from (a call that returns an exception,
    having failed, is not compared).

    Raises
    ------
    RuntimeError
        If two calls drew different random numbers (``check``).
    """
    start, end, results = generator.get_state(), None, []
    for call in calls:
        generator.set_state(start)
        results.append(call())
        if isinstance(results[-1], BaseException):
            continue
        state = generator.get_state()
        if end is None:
            end = state
        elif check and not torch.equal(state, end):
            raise RuntimeError(
                "candidates seeded alike drew different random numbers in a "
                "plug-in's hook"
            )
    if end is not None:
        generator.set_state(end)
    return results
