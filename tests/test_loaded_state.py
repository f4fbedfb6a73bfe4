"""Crafted files are refused whole: every piece of state is checked on load.

Each case saves a fitted estimator, changes one field of the file, recomputes
the checksum (a crafted file, not a corrupted one) and asserts that
:func:`skcl.load` refuses it with a ValueError naming the field, instead of
returning an estimator that predicts wrongly or fails at the next call.
"""

import math

import numpy as np
import pytest
import torch

from skcl import ContinualClassifier, ContinualRegressor, Plugin
from skcl._persistence import _read, _write, load, save
from skcl.penalties import EWC, SI, LwF
from skcl.replay import AGEM, DERPP, ER, BiC, ICaRL

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ESTIMATORS = {
    "er": lambda: ContinualClassifier(replay=ER(memory_size=20)),
    "derpp": lambda: ContinualClassifier(replay=DERPP(memory_size=20)),
    "agem": lambda: ContinualClassifier(replay=AGEM(memory_size=2)),
    "er-regressor": lambda: ContinualRegressor(replay=ER(memory_size=20)),
    "ewc": lambda: ContinualClassifier(penalty=EWC(lam=1.0)),
    "si": lambda: ContinualClassifier(penalty=SI(lam=1.0)),
    "lwf": lambda: ContinualClassifier(penalty=LwF(lam=1.0)),
    "icarl": lambda: ContinualClassifier(replay=ICaRL(memory_size=9)),
    "bic": lambda: ContinualClassifier(replay=BiC(memory_size=20)),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One file per estimator, fitted on three tasks of three classes."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 5)).astype(np.float32)
    y, task_id = np.arange(90) % 3, np.repeat([0, 1, 2], 30)
    folder = tmp_path_factory.mktemp("crafted")
    paths = {}
    for name, make in ESTIMATORS.items():
        est = make().set_params(
            max_epochs=1, batch_size=10, module__hidden_sizes=(4,), random_state=0
        )
        est.fit(X, y if est._target_dtype is not None else X[:, 0], task_id=task_id)
        paths[name] = folder / f"{name}.skcl"
        save(est, paths[name])
    return paths


def owners(tree, cls):
    """Yield the attributes of every stored object of class ``cls`` in ``tree``.

    A plug-in appears twice in a file (``replay_`` and ``net_.plugins_``): a
    crafted file changes both.
    """
    if isinstance(tree, dict):
        if "$owner" in tree and tree["$owner"][0].endswith(f".{cls}"):
            yield tree["$owner"][1]["dict"]
        for value in tree.values():
            yield from owners(value, cls)
    elif isinstance(tree, list):
        for value in tree:
            yield from owners(value, cls)


def set_attribute(cls, name, value):
    def edit(doc, tensors):
        found = list(owners(doc["state"], cls))
        assert found, cls
        for attributes in found:
            attributes[name] = value

    return edit


def tensor_key(tensors, suffix):
    (key,) = [k for k in tensors if k.endswith(suffix)]
    return key


def set_tensor(suffix, change):
    """Replace the tensor whose name ends with ``suffix`` by ``change(tensor)``."""

    def edit(doc, tensors):
        key = tensor_key(tensors, suffix)
        tensors[key] = change(tensors[key].clone()).contiguous()

    return edit


def set_item(index, value):
    def change(tensor):
        tensor.view(-1)[index] = value
        return tensor

    return change


def set_tasks(doc, tensors):
    (estimator,) = [
        a for a in owners(doc["state"], "ContinualClassifier") if "tasks_" in a
    ]
    estimator["tasks_"] = [[1], {"dict": {}}, 2.5]


MEMORY = "memory_/$owner/1/"
CASES = {
    "memory inputs of another width": (
        "er",
        set_tensor(f"{MEMORY}X", lambda t: torch.cat([t, t[:, :1]], dim=1)),
        r"memory_: the memory's X should be a torch.float32 tensor of rows of "
        r"shape \(5,\)",
    ),
    "memory inputs of another dtype": (
        "er",
        set_tensor(f"{MEMORY}X", lambda t: t.double()),
        r"memory's X should be a torch.float32 tensor.*got torch.float64",
    ),
    "memory inputs with NaN": (
        "er",
        set_tensor(f"{MEMORY}X", set_item(7, math.nan)),
        "memory's X holds NaN or infinite values",
    ),
    "memory labels outside the classes": (
        "er",
        set_tensor(f"{MEMORY}y", set_item(0, 3)),
        "memory's y should hold labels of the 3 classes",
    ),
    "class-balanced memory labels outside the classes": (
        "agem",
        set_tensor(f"{MEMORY}y", set_item(0, -1)),
        "memory's y should hold labels of the 3 classes",
    ),
    "regressor memory targets of another width": (
        "er-regressor",
        set_tensor(f"{MEMORY}y", lambda t: torch.cat([t, t], dim=1)),
        r"memory's y should be a torch.float32 tensor of rows of shape \(1,\)",
    ),
    "DER++ logits with NaN": (
        "derpp",
        set_tensor(f"{MEMORY}logits", set_item(4, math.nan)),
        "memory's logits holds NaN or infinite values",
    ),
    "DER++ logits 13 wide": (
        "derpp",
        set_tensor(f"{MEMORY}logits", lambda t: t.repeat(1, 5)[:, :13]),
        r"memory's logits should be a torch.float32 tensor of rows of shape \(3,\)",
    ),
    "reservoir of capacity 1e11": (
        "er",
        set_attribute("ReservoirMemory", "capacity", 1e11),
        "capacity",
    ),
    "reservoir of capacity 5 under memory_size=20": (
        "er",
        set_attribute("ReservoirMemory", "capacity", 5),
        r"memory_.capacity is 5, but memory_size=20",
    ),
    "n_seen 2**62": (
        "er",
        set_attribute("ReservoirMemory", "n_seen", 2**62),
        r"n_seen should be in \[0, 2\*\*53\]",
    ),
    "n_seen below the filled rows": (
        "er",
        set_attribute("ReservoirMemory", "n_seen", 5),
        "memory's X holds values in rows that its counts say are unused",
    ),
    "class-balanced n_stored beyond its tasks": (
        "agem",
        set_attribute("ClassBalancedMemory", "n_stored", 100),
        r"n_stored should be in \[0, 12\] after 2 ended tasks",
    ),
    "memory at another task": (
        "er",
        set_attribute("ReservoirMemory", "task", 0),
        "memory_.task is 0, but the current task is 2",
    ),
    "EWC precision_ NaN": (
        "ewc",
        set_tensor("precision_/0", set_item(0, math.nan)),
        r"plug-in 0 \(EWC\): precision_\[0\] holds NaN or infinite values",
    ),
    "EWC precision_ negative": (
        "ewc",
        set_tensor("precision_/2", set_item(1, -1.0)),
        r"plug-in 0 \(EWC\): precision_\[2\] holds negative values",
    ),
    "SI importance_ inf": (
        "si",
        set_tensor("importance_/1", set_item(0, math.inf)),
        r"plug-in 0 \(SI\): importance_\[1\] holds NaN or infinite values",
    ),
    "LwF teacher weights NaN": (
        "lwf",
        set_tensor("teacher_/$module/0/layers.0.weight", set_item(3, math.nan)),
        r"plug-in 0 \(LwF\): teacher_ holds NaN or infinite values",
    ),
    "LwF classes beyond the model's": (
        "lwf",
        set_tensor("old_classes_", set_item(0, 7)),
        r"old_classes_ should hold sorted distinct class indices in \[0, 3\)",
    ),
    "ICaRL exemplar labels beyond the model's": (
        "icarl",
        set_tensor("memory_y_", set_item(0, 7)),
        r"plug-in 0 \(ICaRL\): memory_X_ and memory_y_ should hold at most",
    ),
    "ICaRL class means NaN": (
        "icarl",
        set_tensor("class_means_/1", set_item(0, math.nan)),
        r"plug-in 0 \(ICaRL\): class_means_ holds NaN or infinite values",
    ),
    "ICaRL class mask of ints": (
        "icarl",
        set_tensor("old_classes_", lambda t: t.long()),
        r"old_classes_ should be a boolean mask of 3 classes",
    ),
    "BiC bias layer of three values": (
        "bic",
        set_tensor("bias_/1", lambda t: torch.zeros(3)),
        r"plug-in 0 \(BiC\): bias_ should hold \(alpha, beta\) pairs",
    ),
    "BiC held-out labels beyond the model's": (
        "bic",
        set_tensor("holdout_y_", set_item(0, 5)),
        r"holdout_X_ and holdout_y_ should hold inputs like X and labels",
    ),
    "module weights NaN": (
        "ewc",
        set_tensor("module_/$module/0/layers.0.weight", set_item(0, math.nan)),
        "module_ holds NaN or infinite values",
    ),
    "snapshot NaN": (
        "ewc",
        set_tensor("snapshots_/1/layers.2.bias", set_item(0, math.nan)),
        "snapshots_ holds NaN or infinite values",
    ),
    "duplicated classes_": (
        "ewc",
        set_tensor("/classes_", lambda t: torch.tensor([0, 1, 1])),
        "classes_ should hold sorted distinct labels",
    ),
    "tasks_ of lists, dicts and floats": (
        "ewc",
        set_tasks,
        "tasks_ should hold distinct ints or strings",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_file_is_refused_naming_the_field(case, saved, tmp_path):
    name, edit, match = CASES[case]
    doc, tensors = _read(saved[name])
    edit(doc, tensors)
    path = tmp_path / "crafted.skcl"
    _write(path, doc, tensors)
    with pytest.raises(ValueError, match=match):
        load(path)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_the_files_as_saved_load(name, saved):
    """The checks refuse only what was changed: every file as saved loads."""
    assert load(saved[name]).tasks_ == [0, 1, 2]


def test_numpy_task_ids_and_string_labels_load(tmp_path):
    """Task ids kept as numpy ints (an object array's) and string classes pass."""
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(40, 3)), np.array(["a", "b"])[np.arange(40) % 2]
    task_id = np.array([np.int64(5)] * 20 + [np.int64(7)] * 20, dtype=object)
    est = ContinualClassifier(max_epochs=1, replay=ER(memory_size=8), random_state=0)
    save(est.fit(X, y, task_id=task_id), tmp_path / "model.skcl")
    loaded = load(tmp_path / "model.skcl")
    assert loaded.tasks_ == [5, 7]
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


class Anchor(Plugin):
    """A plug-in of a user's: its state is checked by the default check."""

    def initialize(self, net):
        self.anchor_ = {
            n: p.detach().clone() for n, p in net.module_.named_parameters()
        }


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda t: t[:-1],
            r"plug-in 0 \(Anchor\): anchor_ holds a torch.float32 tensor of shape",
        ),
        (set_item(0, math.nan), r"plug-in 0 \(Anchor\): anchor_ holds NaN"),
    ],
    ids=["shape", "nan"],
)
def test_a_plugin_of_ones_own_is_checked_by_default(change, match, tmp_path):
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(20, 3)), np.arange(20) % 2
    est = ContinualClassifier(penalty=Anchor(), max_epochs=1).fit(X, y)
    save(est, tmp_path / "model.skcl")
    assert load(tmp_path / "model.skcl", modules=[Anchor]).tasks_ == [0]
    doc, tensors = _read(tmp_path / "model.skcl")
    set_tensor("anchor_/layers.0.bias", change)(doc, tensors)
    _write(tmp_path / "crafted.skcl", doc, tensors)
    with pytest.raises(ValueError, match=match):
        load(tmp_path / "crafted.skcl", modules=[Anchor])
