"""Parameters are declared once and checked whole before anything changes.

Every bad value below is refused at ``fit`` and at ``partial_fit`` (also when
set with ``set_params`` between calls) with an error naming the parameter as
``set_params`` names it and the values it accepts, and the estimator is left
bitwise as it was.
"""

import functools
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from skcl import ContinualClassifier, ContinualRegressor
from skcl.penalties import EWC, L2, MAS, SI, L2Init, LwF, ShrinkAndPerturb
from skcl.replay import AGEM, DERPP, ER, ClassBalancedMemory, ReservoirMemory

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STRENGTH = r"must be a float >= 0 \(finite\)"
PENALTIES = {"EWC": EWC, "L2": L2, "L2Init": L2Init, "SI": SI, "MAS": MAS, "LwF": LwF}
BAD_STRENGTHS = [-1.0, math.nan, math.inf, "x", None]

# (plug-in as built, parameter as set_params names it, bad value, message)
CASES = [
    (
        {"penalty": cls()},
        "penalty__lam",
        bad,
        rf"penalty__lam {STRENGTH}, got {bad!r} \({name}'s 'lam'\)",
    )
    for name, cls in PENALTIES.items()
    for bad in BAD_STRENGTHS
] + [
    ({"replay": ER()}, "replay__memory_batch_size", 0, "must be an int >= 1, got 0"),
    ({"penalty": EWC()}, "penalty__decay", 2, r"must be a float in \[0, 1\], got 2"),
    ({"penalty": EWC()}, "penalty__n_samples", -1, "an int >= 1 or None, got -1"),
    ({"penalty": MAS()}, "penalty__alpha", 2, r"must be a float in \[0, 1\], got 2"),
    ({"penalty": LwF()}, "penalty__temperature", -1, "a positive float"),
    ({"replay": DERPP()}, "replay__alpha", -1, rf"{STRENGTH}, got -1 \(DERPP"),
    ({"replay": DERPP()}, "replay__beta", math.inf, rf"{STRENGTH}, got inf \(DERPP"),
    ({"penalty": SI()}, "penalty__xi", -1, r"must be a positive float \(finite\)"),
]
IDS = [
    f"{key}={value!r}-{next(iter(p.values())).__class__.__name__}"
    for p, key, value, _ in CASES
]


def stream():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(48, 3)).astype(np.float32)
    return X, np.arange(48) % 2, np.repeat([0, 1], 24)


def make(**params):
    """A small classifier; its plug-ins are fresh copies of those given."""
    params = {
        k: clone(v) if k in ("penalty", "replay") else v for k, v in params.items()
    }
    return ContinualClassifier(
        module__hidden_sizes=(4,), max_epochs=1, batch_size=8, random_state=0, **params
    )


def frozen(value, seen=None):
    """Everything reachable from ``value``, tensors as bytes: equal when unchanged."""
    seen = {} if seen is None else seen
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        return ("tensor", str(t.dtype), tuple(t.shape), t.numpy().tobytes())
    if isinstance(value, np.ndarray) and value.dtype != object:
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (np.random.RandomState, torch.Generator)):
        return frozen(value.get_state(), seen)
    if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
        flags = (
            [m.training for m in value.modules()] if hasattr(value, "modules") else []
        )
        return (type(value).__name__, frozen(value.state_dict(), seen), flags)
    if isinstance(value, dict):
        return {k: frozen(v, seen) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return (type(value).__name__, [frozen(v, seen) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))  # nan equals nan here
    if hasattr(value, "__dict__") and not isinstance(value, type):
        if id(value) in seen:
            return ("seen", seen[id(value)])
        seen[id(value)] = len(seen)
        return (type(value).__qualname__, frozen(vars(value), seen))
    return value


@pytest.mark.parametrize(("plugin", "key", "bad", "match"), CASES, ids=IDS)
def test_a_bad_value_given_before_the_first_fit_is_refused(plugin, key, bad, match):
    X, y, t = stream()
    est = make(**plugin).set_params(**{key: bad})
    before = frozen(est)
    with pytest.raises((ValueError, TypeError), match=match) as error:
        est.fit(X, y, task_id=t)
    assert key in str(error.value)
    assert not hasattr(est, "net_")
    assert frozen(est) == before
    with pytest.raises((ValueError, TypeError), match=match):
        est.partial_fit(X, y, task_id=0, classes=[0, 1])
    assert frozen(est) == before


@pytest.mark.parametrize(("plugin", "key", "bad", "match"), CASES, ids=IDS)
def test_a_bad_value_set_between_partial_fit_calls_changes_nothing(
    plugin, key, bad, match
):
    X, y, t = stream()
    est = make(**plugin)
    est.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=[0, 1])
    est.set_params(**{key: bad})
    before = frozen(est)
    with pytest.raises((ValueError, TypeError), match=match):
        est.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert frozen(est) == before
    # The refit is refused as well, and keeps the model.
    with pytest.raises((ValueError, TypeError), match=match):
        est.fit(X, y, task_id=t)
    assert frozen(est) == before


def test_the_whole_call_is_checked_each_plugin_named_by_its_key():
    X, y, t = stream()
    est = make(penalty=[EWC(), L2()], replay=ER())
    est.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=[0, 1])
    est.set_params(penalty__l2__lam=-1.0)
    before = frozen(est)
    with pytest.raises(ValueError, match=r"penalty__l2__lam .* \(L2's 'lam'\)"):
        est.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert frozen(est) == before
    est.set_params(penalty__l2__lam=0.0, replay__memory_batch_size=-3)
    before = frozen(est)
    with pytest.raises(ValueError, match="replay__memory_batch_size must be an int"):
        est.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert frozen(est) == before
    # Once valid again, the call trains.
    est.set_params(replay__memory_batch_size=4)
    est.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert est.tasks_ == [0, 1]


def test_a_negative_strength_never_trains_with_the_explicit_step():
    # It used to return a model with |param| ~ 4e11 and chance accuracy.
    X, y, t = stream()
    est = make(penalty=L2Init(lam=-1e3), penalty_step="explicit")
    with pytest.raises(ValueError, match=rf"penalty__lam {STRENGTH}, got -1000.0"):
        est.fit(X, y, task_id=t)
    assert not hasattr(est, "net_")


@pytest.mark.parametrize(
    ("plugin", "key", "edge"),
    [
        ({"penalty": EWC()}, "penalty__lam", 0),
        ({"penalty": EWC()}, "penalty__decay", 0.0),
        ({"penalty": EWC()}, "penalty__decay", 1),
        ({"penalty": MAS()}, "penalty__alpha", 1.0),
        ({"penalty": ShrinkAndPerturb()}, "penalty__shrink", 0.0),
        ({"replay": DERPP()}, "replay__beta", 0),
        ({"replay": AGEM()}, "replay__memory_batch_size", 1),
    ],
)
def test_the_edges_of_each_range_train(plugin, key, edge):
    X, y, t = stream()
    est = make(**plugin)
    est.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=[0, 1])
    est.set_params(**{key: edge}).partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert est.tasks_ == [0, 1]


@pytest.mark.parametrize("bad", [-0.5, 2.0, math.nan])
def test_shrink_and_perturb_takes_fractions(bad):
    X, y, _ = stream()
    with pytest.raises(ValueError, match=r"penalty__noise must be a float in \[0, 1\]"):
        make(penalty=ShrinkAndPerturb(noise=bad)).fit(X, y)


# ------------------------------------------------------------- replay memory
def test_a_memory_the_machine_cannot_hold_is_refused_up_front_naming_its_bytes():
    X, y, t = stream()
    est = make(replay=ER(memory_size=10**11))
    with pytest.raises(ValueError, match=r"replay__memory_size=100000000000 .* bytes"):
        est.fit(X, y, task_id=t)
    assert not hasattr(est, "net_")
    # 3 float32 inputs, an int64 target and an int64 task: 28 bytes a row.
    with pytest.raises(ValueError, match=r"about 2\.8e\+12 bytes"):
        est.partial_fit(X, y, task_id=0, classes=[0, 1])
    # DER++ also keeps each sample's outputs; class-balanced, per class.
    big = DERPP(memory_size=10**10, memory="class_balanced")
    with pytest.raises(ValueError, match=r"about 7\.2e\+11 bytes"):
        make(replay=big).fit(X, y)
    with pytest.raises(ValueError, match="bytes"):
        ContinualRegressor(replay=ER(memory_size=10**11)).fit(X, X[:, 0])


def test_a_memory_size_that_is_not_an_int_is_refused():
    X, y, t = stream()
    est = make(replay=ER(memory_size=1e11))
    with pytest.raises(ValueError, match=r"replay__memory_size must be an int >= 1"):
        est.fit(X, y, task_id=t)
    est = make(replay=ER(memory_size=20))
    est.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=[0, 1])
    before = frozen(est)
    est.set_params(replay__memory_size=1e11)
    with pytest.raises(ValueError, match="replay__memory_size must be an int >= 1"):
        est.partial_fit(X[t == 1], y[t == 1], task_id=1)
    est.set_params(replay__memory_size=20)
    assert frozen(est) == before


def test_memories_refuse_sizes_that_are_not_positive_ints():
    for bad in (0, -1, 2.5, True, None):
        with pytest.raises(ValueError, match="capacity must be an int >= 1"):
            ReservoirMemory(bad)
        with pytest.raises(ValueError, match="per_class must be an int >= 1"):
            ClassBalancedMemory(bad, 2)
    with pytest.raises(ValueError, match="n_classes must be an int >= 1"):
        ClassBalancedMemory(1, 0)


# ------------------------------------------------------------------- classes=
def test_a_later_partial_fit_refuses_other_classes():
    X, y, t = stream()
    est = make()
    est.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=[0, 1])
    before = frozen(est)
    for other in ([0, 1, 2], [1], ["a", "b"]):
        with pytest.raises(ValueError, match="not the same as on the first call"):
            est.partial_fit(X[t == 1], y[t == 1], task_id=1, classes=other)
        assert frozen(est) == before
    # The same classes, in any order, or none, are fine (as in scikit-learn).
    est.partial_fit(X[t == 1], y[t == 1], task_id=1, classes=np.array([1, 0]))
    est.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert est.classes_.tolist() == [0, 1]


def test_the_error_names_the_declared_range_for_the_estimator_too():
    X, y, _ = stream()
    for params, match in [
        ({"lr": math.inf}, r"lr must be a positive float \(finite\), got inf"),
        ({"min_lr": -1.0}, r"min_lr must be a float >= 0 \(finite\)"),
        ({"lr_decay": 0}, "lr_decay must be a positive float"),
        ({"multi_head": "yes"}, "multi_head must be a bool"),
        ({"optimizer": torch.nn.Linear}, "optimizer must be a torch.optim.Optimizer"),
    ]:
        est = make(**params)
        with pytest.raises((ValueError, TypeError), match=match):
            est.fit(X, y)
        assert not hasattr(est, "net_")


# ------------------------------------------------------------------ fuzzed
@functools.cache
def fitted(cls):
    """A classifier with penalty ``cls()`` after its first task, pickled."""
    X, y, t = stream()
    est = make(penalty=cls())
    return pickle.dumps(
        est.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=[0, 1])
    )


@settings(max_examples=25, deadline=None)
@given(
    bad=st.one_of(
        st.floats(max_value=-1e-300),
        st.sampled_from([math.nan, math.inf, -math.inf, "1.0", b"1", [1.0], True]),
    ),
    cls=st.sampled_from(list(PENALTIES.values())),
)
def test_any_strength_that_is_not_a_finite_float_at_least_0_is_refused(bad, cls):
    X, y, t = stream()
    est = pickle.loads(fitted(cls)).set_params(penalty__lam=bad)
    before = frozen(est)
    with pytest.raises((ValueError, TypeError), match=rf"penalty__lam {STRENGTH}"):
        est.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert frozen(est) == before
