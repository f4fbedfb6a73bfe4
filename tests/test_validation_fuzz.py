"""Fuzzing input validation: a bad input is refused clearly and changes nothing.

Random inputs with one defect each must raise a ValueError or TypeError whose
message names the defect; arbitrary inputs must either succeed or raise one of
them; and a refused call must leave the estimator exactly as it was (compared
by value). The metric functions get the same treatment on random matrices.
"""

import contextlib
import copy
import functools
import pickle
import re

import numpy as np
import pytest
import torch
from _equality import same
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from scipy import sparse

from skcl import ContinualClassifier, ContinualRegressor
from skcl.metrics import (
    average_accuracy,
    average_incremental_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    learning_accuracy,
)
from skcl.modules import CNN
from skcl.penalties import EWC, L2, SI

FUZZ = settings(max_examples=25, deadline=None)
N_FEATURES = 3
IMAGE = (1, 4, 4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def state_of(est):
    """A copy of the estimator's parameters and of everything training changes."""
    attributes = {k: v for k, v in vars(est).items() if k not in ("net_", "penalty_")}
    fitted = {}
    if hasattr(est, "net_"):
        net = est.net_
        fitted = dict(
            module=net.module_.state_dict(),
            optimizer=net.optimizer_.state_dict(),
            penalties=[vars(p) for p in net.plugins_],
            history=len(net.history_),
            task_index=net.task_index_,
            mask=net.output_mask_,
        )
    return copy.deepcopy((attributes, fitted))


def tiny(cls=ContinualClassifier, **params):
    defaults = dict(max_epochs=1, batch_size=4, random_state=0)
    if "module" not in params:
        defaults["module__hidden_sizes"] = (4,)
    return cls(**{**defaults, **params})


@functools.cache
def pickled(kind):
    """A small fitted estimator of each kind, pickled so each example gets a copy."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(24, N_FEATURES)).astype(np.float32)
    y = np.arange(24) % 3
    if kind == "classifier":
        est = tiny(penalty=[EWC(lam=1.0), SI(lam=0.1)])
        est.partial_fit(X, y, task_id=0, classes=[0, 1, 2])
    elif kind == "multi_head":
        est = tiny(multi_head=True).fit(X, y, task_id=np.repeat([0, 1], 12))
    elif kind == "regressor":
        est = tiny(ContinualRegressor, penalty=L2()).fit(X, X[:, :2], task_id=0)
    elif kind == "cnn":
        images = rng.normal(size=(24, *IMAGE))
        est = tiny(module=CNN, module__channels=(2,), module__hidden_size=4)
        est.fit(images, y)
    else:
        est = tiny(penalty=EWC())
    return pickle.dumps(est)


def fresh(kind):
    return pickle.loads(pickled(kind))


def check_refused_or_done(
    est, method, *args, match=None, errors=(ValueError, TypeError), **kwargs
):
    """Call ``method``; if it raises, check the error and that nothing changed."""
    before = state_of(est)
    try:
        result = getattr(est, method)(*args, **kwargs)
    except errors as error:
        if match is not None:
            assert re.search(match, str(error)), f"{error!r} does not match {match!r}"
        assert same(state_of(est), before), f"{method} changed the estimator"
        return None
    assert match is None, f"{method} accepted an input with a defect ({match})"
    return result


finite = st.floats(-100, 100, allow_nan=False, width=32)
non_finite = st.sampled_from([np.nan, np.inf, -np.inf])


@st.composite
def chunks(draw, sample_shape=(N_FEATURES,), n_targets=None, min_samples=1):
    n = draw(st.integers(min_samples, 8))
    X = draw(arrays(np.float64, (n, *sample_shape), elements=finite))
    if n_targets is None:
        y = draw(arrays(np.int64, n, elements=st.integers(0, 2)))
    else:
        y = draw(arrays(np.float64, (n, n_targets), elements=finite))
    return X, y


def with_value(data, array, values):
    array = np.array(array, dtype=np.result_type(array, np.float64))
    index = data.draw(st.tuples(*(st.integers(0, s - 1) for s in array.shape)))
    array[index] = data.draw(values)
    return array


def other_than(value, low, high):
    return st.integers(low, high).filter(lambda v: v != value)


# Each defect turns a valid chunk (X, y) into partial_fit arguments with one
# problem, and gives the pattern the error message must match.
DEFECTS = {
    "non-finite X": lambda d, X, y: (
        dict(X=with_value(d, X, non_finite), y=y),
        r"Input X contains (NaN|infinity)",
    ),
    "non-finite y": lambda d, X, y: (
        dict(X=X, y=with_value(d, y, non_finite)),
        r"Input y contains (NaN|infinity)",
    ),
    "y of another length": lambda d, X, y: (
        dict(X=X, y=np.resize(y, d.draw(other_than(len(y), 0, 10)))),
        r"inconsistent numbers of samples",
    ),
    "task_id of another length": lambda d, X, y: (
        dict(X=X, y=y, task_id=[0] * d.draw(other_than(len(y), 0, 10))),
        r"task_id must be a scalar or have one entry per sample",
    ),
    "nested task_id": lambda d, X, y: (
        dict(X=X, y=y, task_id=np.zeros((len(y), d.draw(st.integers(1, 3))), int)),
        r"task_id must be a scalar or have one entry per sample",
    ),
    "float task_id": lambda d, X, y: (
        dict(X=X, y=y, task_id=d.draw(st.sampled_from([0.0, 1.5, np.float64(1)]))),
        r"task_id must be an int or a str",
    ),
    "float task_ids": lambda d, X, y: (
        dict(X=X, y=y, task_id=np.zeros(len(y))),
        r"task_id must hold ints or strings, got dtype float64",
    ),
    "bool task_id": lambda d, X, y: (
        dict(X=X, y=y, task_id=d.draw(st.sampled_from([True, False, np.True_]))),
        r"task_id must be an int or a str",
    ),
    "bool task_ids": lambda d, X, y: (
        dict(X=X, y=y, task_id=np.ones(len(y), bool)),
        r"task_id must hold ints or strings, got dtype bool",
    ),
    "None or float among task_ids": lambda d, X, y: (
        dict(
            X=X,
            y=y,
            task_id=np.array(
                [d.draw(st.sampled_from([None, 0.5, True]))] + [0] * (len(y) - 1),
                dtype=object,
            ),
        ),
        r"task_id must hold ints or strings only",
    ),
    "other number of features": lambda d, X, y: (
        dict(X=np.resize(X, (len(X), d.draw(other_than(N_FEATURES, 1, 6)))), y=y),
        rf"X has \d features, but ContinualClassifier is expecting {N_FEATURES}",
    ),
    "samples of another shape": lambda d, X, y: (
        dict(X=X.reshape(*X.shape, 1).repeat(d.draw(st.integers(1, 3)), axis=2), y=y),
        r"X has samples of shape \(3, \d\), but .* samples of shape \(3,\)",
    ),
    "1-d X": lambda d, X, y: (dict(X=X[:, 0], y=y), r"Expected 2D array"),
    "empty X": lambda d, X, y: (dict(X=X[:0], y=y[:0]), r"Found array with 0 sample"),
    "no features": lambda d, X, y: (
        dict(X=X[:, :0], y=y),
        r"Found array with 0 feature",
    ),
    "text X": lambda d, X, y: (
        dict(X=np.full(X.shape, d.draw(st.sampled_from(["a", "x1", "", "nan?"]))), y=y),
        r"could not convert string to float",
    ),
    "complex X": lambda d, X, y: (dict(X=X + 1j, y=y), r"Complex data not supported"),
    "unknown label": lambda d, X, y: (
        dict(
            X=X,
            y=with_value(d, y, st.sampled_from([3, -1, 7, 0.5]))
            if d.draw(st.booleans())
            else np.where(y == y[0], "zero", "one"),
        ),
        r"y contains labels \[.*\] that are not in classes_ \[0, 1, 2\]",
    ),
    "2-d y": lambda d, X, y: (
        dict(X=X, y=np.stack([y, y], axis=1)),
        r"y should be a 1d array",
    ),
    "closed task": lambda d, X, y: (
        dict(
            X=np.concatenate([X, X]),
            y=np.concatenate([y, y]),
            task_id=[1] * len(y) + [0] * len(y),
        ),
        r"Task 0 was already trained and closed",
    ),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
@FUZZ
@given(chunk=chunks(), data=st.data())
def test_partial_fit_refuses_each_defect_and_changes_nothing(defect, chunk, data):
    kwargs, match = DEFECTS[defect](data, *chunk)
    check_refused_or_done(fresh("classifier"), "partial_fit", match=match, **kwargs)


@FUZZ
@given(chunk=chunks(), data=st.data())
def test_valid_chunks_train(chunk, data):
    X, y = chunk
    task_id = data.draw(
        st.sampled_from([None, 0, 1, "b", np.int64(1), np.zeros(len(y), int)])
    )
    est = fresh("classifier")
    assert est.partial_fit(X, y, task_id=task_id) is est
    assert len(est.snapshots_) == len(est.tasks_)
    assert all(torch.isfinite(p).all() for p in est.module_.parameters())


@st.composite
def anything(draw, n_max=6):
    """Arrays and lists of any shape and kind, sometimes sparse."""
    kind = draw(st.sampled_from(["float", "int", "bool", "text", "object", "sparse"]))
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=n_max))
    if kind == "sparse":
        n, m = draw(st.integers(0, n_max)), draw(st.integers(0, n_max))
        values = draw(arrays(np.float64, (n, m), elements=st.floats(width=32)))
        return draw(
            st.sampled_from([sparse.csr_matrix, sparse.csc_matrix, sparse.coo_matrix])
        )(values)
    elements = {
        "float": st.floats(width=32),
        "int": st.integers(-5, 5),
        "bool": st.booleans(),
        "text": st.text("ab1.e -", max_size=2),
        "object": st.one_of(
            st.integers(0, 3), st.text(max_size=1), st.none(), st.floats()
        ),
    }[kind]
    dtype = {"float": float, "int": int, "bool": bool, "text": "U2", "object": object}
    dtype = dtype[kind]
    return draw(arrays(dtype, shape, elements=elements))


task_ids = st.one_of(
    st.none(),
    st.integers(-2, 3),
    st.text(max_size=2),
    st.floats(),
    st.booleans(),
    st.lists(st.one_of(st.integers(0, 2), st.sampled_from(["a", "b"])), max_size=6),
    anything(),
)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning")
@FUZZ
@given(X=anything(), y=anything(), task_id=task_ids)
def test_arbitrary_partial_fit_either_trains_or_refuses_cleanly(X, y, task_id):
    est = fresh("classifier")
    # Finite but huge inputs may make training diverge: that is refused too.
    errors = (ValueError, TypeError, FloatingPointError)
    done = check_refused_or_done(
        est, "partial_fit", X, y, task_id=task_id, errors=errors
    )
    if done is not None:
        assert len(est.snapshots_) == len(est.tasks_)
        assert all(isinstance(t, (int, str)) for t in est.tasks_)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@FUZZ
@given(
    X=anything(),
    task_id=task_ids,
    kind=st.sampled_from(["classifier", "multi_head", "regressor", "cnn"]),
)
def test_arbitrary_predict_either_predicts_or_refuses_cleanly(X, task_id, kind):
    est = fresh(kind)
    predicted = check_refused_or_done(est, "predict", X, task_id=task_id)
    if predicted is not None:
        assert len(predicted) == X.shape[0]


@FUZZ
@given(chunk=chunks(), data=st.data())
def test_predict_refuses_bad_inputs(chunk, data):
    X, _ = chunk
    defect = data.draw(
        st.sampled_from(
            [
                "non-finite X",
                "other number of features",
                "samples of another shape",
                "1-d X",
                "empty X",
                "text X",
            ]
        )
    )
    kwargs, match = DEFECTS[defect](data, X, np.zeros(len(X), int))
    for method in ("predict", "predict_proba"):
        check_refused_or_done(fresh("classifier"), method, kwargs["X"], match=match)


@FUZZ
@given(chunk=chunks(), data=st.data())
def test_multi_head_predict_refuses_bad_task_ids(chunk, data):
    X, _ = chunk
    task_id, match = data.draw(
        st.sampled_from(
            [
                (7, r"task_id 7 was never trained; known tasks: \[0, 1\]"),
                ("0", r"task_id '0' was never trained"),
                (0.5, r"task_id must be an int or a str"),
                (np.zeros(len(X)), r"task_id must hold ints or strings"),
                ([0] * (len(X) + 1), r"task_id must be a scalar or have one entry"),
            ]
        )
    )
    check_refused_or_done(
        fresh("multi_head"), "predict", X, task_id=task_id, match=match
    )


@FUZZ
@given(chunk=chunks(n_targets=2), data=st.data())
def test_regressor_refuses_bad_targets(chunk, data):
    X, y = chunk
    y, match = data.draw(
        st.sampled_from(
            [
                (with_value(data, y, non_finite), r"Input y contains (NaN|infinity)"),
                (y[:, 0], r"y has 1 targets, but ContinualRegressor was trained on 2"),
                (
                    np.tile(y, 2),
                    r"y has 4 targets, but ContinualRegressor was trained on 2",
                ),
                (y[:, :, None], r"Found array with dim 3"),
                (
                    y.astype(str).astype(object) + "x",
                    r"could not convert string to float",
                ),
            ]
        )
    )
    check_refused_or_done(fresh("regressor"), "partial_fit", X, y, match=match)


@FUZZ
@given(
    shape=array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5), data=st.data()
)
def test_cnn_refuses_images_of_another_shape(shape, data):
    X = np.zeros((2, *shape), dtype=np.float32)
    est = fresh("cnn")
    match = (
        None
        if shape == IMAGE
        else r"X has \d+ features, but ContinualClassifier is expecting 1|"
        rf"X has samples of shape {re.escape(str(shape))}, but .* \(1, 4, 4\)"
    )
    check_refused_or_done(est, "partial_fit", X, [0, 1], match=match)
    check_refused_or_done(est, "predict", X, match=match)


@FUZZ
@given(chunk=chunks(), data=st.data())
def test_first_call_needs_valid_classes_and_keeps_the_estimator_unfitted(chunk, data):
    X, y = chunk
    est = fresh("unfitted")
    classes, match = data.draw(
        st.sampled_from(
            [
                (None, r"classes must be passed on the first call to partial_fit"),
                ([5, 6], r"y contains labels \[.*\] that are not in classes_ \[5, 6\]"),
            ]
        )
    )
    check_refused_or_done(
        est, "partial_fit", X, y, task_id=0, classes=classes, match=match
    )
    assert not hasattr(est, "net_")
    for defect in ("non-finite X", "y of another length", "empty X", "float task_ids"):
        kwargs, match = DEFECTS[defect](data, X, y)
        check_refused_or_done(est, "fit", match=match, **kwargs)
        assert not hasattr(est, "net_")


@FUZZ
@given(chunk=chunks(), data=st.data())
def test_sparse_input_is_densified(chunk, data):
    X, y = chunk
    X[X < 0] = 0
    matrix = data.draw(
        st.sampled_from([sparse.csr_matrix, sparse.csc_matrix, sparse.coo_matrix])
    )
    dense, sparse_input = fresh("classifier"), fresh("classifier")
    dense.partial_fit(X, y, task_id=1)
    sparse_input.partial_fit(matrix(X), y, task_id=1)
    assert same(state_of(sparse_input)[1], state_of(dense)[1])
    np.testing.assert_array_equal(
        dense.predict_proba(matrix(X)), dense.predict_proba(X)
    )
    kwargs, match = DEFECTS["non-finite X"](data, X, y)
    check_refused_or_done(dense, "partial_fit", matrix(kwargs["X"]), y, match=match)


# ------------------------------------------------ regressions found by fuzzing
def test_failed_penalty_initialization_leaves_the_estimator_unfitted():
    est = tiny(penalty=EWC(mode="bad"))
    with pytest.raises(ValueError, match="mode must be"):
        est.fit(np.zeros((4, 3)), [0, 1, 0, 1])
    assert not hasattr(est, "net_")


def test_ragged_task_id_is_named_in_the_error():
    est = fresh("classifier")
    with pytest.raises(ValueError, match="task_id"):
        est.partial_fit(np.zeros((2, 3)), [0, 1], task_id=[[0], [0, 1]])


def test_mixed_int_and_str_task_ids_are_not_turned_into_strings():
    est = fresh("classifier")
    with contextlib.suppress(TypeError):
        est.partial_fit(np.zeros((4, 3)), [0, 1, 0, 1], task_id=[0, 0, "a", "a"])
    assert est.tasks_ in ([0], [0, "a"])


def test_labels_of_mixed_types_are_named_in_the_error():
    est = fresh("classifier")
    with pytest.raises((ValueError, TypeError), match=r"\by\b|label"):
        est.partial_fit(np.zeros((2, 3)), np.array([0, "a"], dtype=object))


def test_images_too_small_for_the_cnn_give_a_value_error():
    est = tiny(module=CNN)
    with pytest.raises(ValueError, match="too small"):
        est.fit(np.zeros((2, 1, 1, 1)), [0, 1])
    assert not hasattr(est, "input_shape_")


def test_values_beyond_the_network_dtype_are_refused():
    est = fresh("classifier")
    with pytest.raises(ValueError, match="too large"):
        est.predict_proba(np.full((2, 3), 1e39))


# ------------------------------------------------------------------ metrics
SQUARE_METRICS = [
    average_accuracy,
    average_incremental_accuracy,
    learning_accuracy,
    forgetting,
    backward_transfer,
    functools.partial(forgetting, reference="first"),
]


@st.composite
def square(draw, low=-1e6, high=1e6):
    n = draw(st.integers(1, 6))
    return draw(arrays(np.float64, (n, n), elements=st.floats(low, high)))


@FUZZ
@given(R=square())
def test_metrics_of_any_finite_matrix_are_finite_and_bounded(R):
    tol = 1e-9 * max(1.0, np.abs(R).max())
    for metric in SQUARE_METRICS[:3]:
        value = metric(R)
        assert isinstance(value, float) and R.min() - tol <= value <= R.max() + tol
    spread = R.max() - R.min()
    for value in [metric(R) for metric in SQUARE_METRICS[3:]] + [
        forward_transfer(R, R[0])
    ]:
        assert isinstance(value, float) and abs(value) <= spread + tol


@FUZZ
@given(shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
def test_metrics_refuse_matrices_that_are_not_square(shape):
    R = np.full(shape, 0.5)
    if len(shape) == 2 and shape[0] == shape[1] > 0:
        return
    for metric in SQUARE_METRICS:
        with pytest.raises(
            ValueError, match=r"non-empty square 2-D array .* got shape"
        ):
            metric(R)


@FUZZ
@given(R=square(0, 1), data=st.data())
def test_metrics_refuse_a_non_finite_score_anywhere(R, data):
    bad = with_value(data, R, non_finite)
    for metric in [*SQUARE_METRICS, lambda R: forward_transfer(R, np.zeros(len(R)))]:
        with pytest.raises(ValueError, match="R must contain only finite values"):
            metric(bad)
    with pytest.raises(ValueError, match="b must contain only finite values"):
        forward_transfer(R, with_value(data, np.zeros(len(R)), non_finite))


@FUZZ
@given(
    R=square(0, 1),
    b_shape=array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=7),
)
def test_forward_transfer_refuses_b_of_another_shape(R, b_shape):
    if b_shape == (len(R),):
        return
    with pytest.raises(ValueError, match=rf"b must have shape \({len(R)},\)"):
        forward_transfer(R, np.zeros(b_shape))


@FUZZ
@given(R=square(0, 1), data=st.data())
def test_metrics_refuse_text_and_ragged_rows(R, data):
    text = R.astype(object)
    text[data.draw(st.integers(0, len(R) - 1)), 0] = data.draw(
        st.sampled_from(["a", "", "0.5x", "1,0"])
    )
    ragged = [list(row) for row in R] + [[0.5] * (len(R) + 1)]
    for bad in (text, ragged):
        for metric in SQUARE_METRICS:
            with pytest.raises(
                ValueError, match=r"R must be an array of numbers|square 2-D"
            ):
                metric(bad)
    with pytest.raises(ValueError, match="reference must be 'max' or 'first'"):
        forgetting(
            R,
            reference=data.draw(st.text().filter(lambda s: s not in ("max", "first"))),
        )
