"""skcl's safe file format: exact round trips, clear refusals, no unpickling."""

import copy
import json
import os
import pickle
import warnings

import numpy as np
import pytest
import safetensors.torch
import torch
from _equality import same
from _tolerance import forward_operations, tolerance
from skorch.callbacks import Callback

from skcl import ContinualClassifier, ContinualRegressor
from skcl._persistence import _read, _write, load, save
from skcl.callbacks import PrequentialScore, TaskMonitor
from skcl.modules import CNN
from skcl.penalties import EWC, L2, MAS, SI, L2Init, QuadraticPenalty, ShrinkAndPerturb

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def state_of(est):
    """Everything that determines an estimator's predictions and training.

    The history is kept without its timings (``dur``).
    """
    net = est.net_
    attributes = {k: v for k, v in vars(est).items() if k not in ("net_", "penalty_")}
    callbacks = [
        (name, vars(cb))
        for name, cb in net.callbacks_
        if name not in ("epoch_timer", "print_log")
    ]
    return copy.deepcopy(
        (
            attributes,
            net.module_.state_dict(),
            net.optimizer_.state_dict(),
            [vars(p) for p in net.plugins_],
            callbacks,
            [{k: v for k, v in e.items() if k != "dur"} for e in net.history_],
            net.task_index_,
            net.output_mask_,
        )
    )


def round_trip(est, tmp_path, **kwargs):
    save(est, tmp_path / "model.skcl")
    return load(tmp_path / "model.skcl", **kwargs)


def small(cls=ContinualClassifier, **params):
    defaults = dict(max_epochs=2, lr=0.05, batch_size=20, random_state=0)
    if "module" not in params:
        defaults.update(module__hidden_sizes=(16,), module__dropout=0.1)
    return cls(**{**defaults, **params})


def stream(kind, digits_stream):
    X, y, t = digits_stream
    if kind == "images":
        return X.reshape(-1, 1, 8, 8), y, t
    if kind == "strings":
        return X, np.array([f"digit {d}" for d in y]), np.array(["a", "b", "c"])[t]
    if kind == "targets":
        return X, np.stack([y / 9.0, X[:, :8].mean(axis=1)], axis=1), t
    if kind == "target":
        return X, y / 9.0, t
    return X, y, t


CONFIGS = {
    "no-penalty": ("digits", {}),
    "ewc-separate": ("digits", {"penalty": EWC(lam=10.0)}),
    "ewc-online-subsampled": (
        "digits",
        {"penalty": EWC(lam=10.0, mode="online", decay=0.5, n_samples=50)},
    ),
    "ewc-sampled-fisher": ("digits", {"penalty": EWC(lam=10.0, fisher="sampled")}),
    "si": ("digits", {"penalty": SI(lam=0.5, xi=0.1)}),
    "mas": ("digits", {"penalty": MAS(lam=1.0, alpha=0.25)}),
    "l2": ("digits", {"penalty": L2(lam=1.0), "keep_snapshots": False}),
    "l2init": ("digits", {"penalty": L2Init(lam=0.1)}),
    "ewc+l2init": ("digits", {"penalty": [EWC(lam=10.0), L2Init(lam=0.1)]}),
    "shrink-perturb": (
        "digits",
        {"penalty": ShrinkAndPerturb(shrink=1e-3, noise=1e-3)},
    ),
    "adam-reset-decay": (
        "digits",
        {
            "optimizer": torch.optim.Adam,
            "optimizer__betas": (0.8, 0.9),
            "lr": 0.01,
            "lr_decay": 0.5,
            "reset_optimizer": True,
            "module__activation": torch.nn.Tanh,
        },
    ),
    "multi-head-strings": ("strings", {"multi_head": True, "penalty": SI(lam=0.5)}),
    "regressor-2-targets": ("targets", {"cls": ContinualRegressor, "penalty": MAS()}),
    "regressor-1-target": ("target", {"cls": ContinualRegressor, "penalty": EWC()}),
    "cnn": (
        "images",
        {
            "module": CNN,
            "module__channels": (4,),
            "module__hidden_size": 16,
            "penalty": EWC(lam=10.0),
        },
    ),
}


def make(name):
    kind, params = CONFIGS[name]
    params = copy.deepcopy(params)
    return small(params.pop("cls", ContinualClassifier), **params)


def outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_loaded_estimator_predicts_and_continues_exactly(name, digits_stream, tmp_path):
    X, y, t = stream(CONFIGS[name][0], digits_stream)
    tasks = list(dict.fromkeys(t))
    first_two = np.isin(t, tasks[:2])
    direct = make(name).fit(X, y, task_id=t)
    saved = make(name).fit(X[first_two], y[first_two], task_id=t[first_two])
    loaded = round_trip(saved, tmp_path)
    assert type(loaded) is type(saved)
    assert same(state_of(loaded), state_of(saved))
    np.testing.assert_array_equal(outputs(loaded, X), outputs(saved, X))
    last = ~first_two
    loaded.partial_fit(X[last], y[last], task_id=tasks[2])
    np.testing.assert_array_equal(outputs(loaded, X), outputs(direct, X))
    assert loaded.tasks_ == direct.tasks_
    assert same(loaded.snapshots_, direct.snapshots_)


@pytest.mark.parametrize("name", ["ewc-separate", "si", "mas", "multi-head-strings"])
def test_saved_in_the_middle_of_a_task(name, digits_stream, tmp_path):
    X, y, t = stream(CONFIGS[name][0], digits_stream)
    tasks = list(dict.fromkeys(t))
    halves = [np.flatnonzero(t == task) for task in tasks]
    chunks = [halves[0], halves[1][:150], halves[1][150:], halves[2]]
    classes = np.unique(y)

    def train(est, parts):
        for rows in parts:
            est.partial_fit(X[rows], y[rows], task_id=t[rows][0], classes=classes)
        return est

    direct = train(make(name), chunks)
    loaded = round_trip(train(make(name), chunks[:2]), tmp_path)
    train(loaded, chunks[2:])
    assert same(state_of(loaded), state_of(direct))


def test_saving_a_loaded_estimator_gives_the_same_content(digits_stream, tmp_path):
    X, y, t = digits_stream
    est = make("ewc+l2init").fit(X, y, task_id=t)
    save(est, tmp_path / "a.skcl")
    save(load(tmp_path / "a.skcl"), tmp_path / "b.skcl")
    (doc_a, tensors_a), (doc_b, tensors_b) = (
        _read(tmp_path / "a.skcl"),
        _read(tmp_path / "b.skcl"),
    )
    assert doc_a == doc_b
    assert same(tensors_a, tensors_b)


def test_unfitted_estimator_and_its_parameters(tmp_path):
    est = ContinualClassifier(
        penalty=(EWC(lam=3.0, mode="online"), L2(lam=0.5)),
        optimizer=torch.optim.RMSprop,
        optimizer__alpha=0.9,
        module__hidden_sizes=(7, 5),
        module__activation=torch.nn.GELU,
        classes=np.array(["a", "b"]),
        random_state=np.random.RandomState(3),
        device=torch.device("cpu"),
        callbacks=[("prequential", PrequentialScore())],
    )
    loaded = round_trip(est, tmp_path)
    assert not hasattr(loaded, "net_")
    assert same(loaded.get_params(deep=False), est.get_params(deep=False))


def test_regressor_prediction_shape_and_pandas_feature_names(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    est = small(ContinualRegressor).fit(frame, frame["a"] * 2)
    loaded = round_trip(est, tmp_path)
    assert loaded.feature_names_in_.tolist() == ["a", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = loaded.predict(frame)
    assert predicted.shape == (60,)
    np.testing.assert_array_equal(predicted, est.predict(frame))


def test_callbacks_state_is_restored(digits_stream, tmp_path):
    X, y, t = digits_stream

    def make_monitored():
        callbacks = [TaskMonitor(X[::10], y[::10], t[::10]), PrequentialScore()]
        return small(callbacks=callbacks)

    direct = make_monitored().fit(X, y, task_id=t)
    saved = make_monitored().fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    loaded = round_trip(saved, tmp_path)
    loaded.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert same(state_of(loaded)[4], state_of(direct)[4])
    monitor = dict(loaded.net_.callbacks_)["TaskMonitor"]
    assert monitor.training_task_ == [0, 0, 1, 1, 2, 2]


class Bilinear(torch.nn.Module):
    """A custom module: only loadable when passed to ``load``."""

    def __init__(self, input_dim, output_dim, rank=2):
        super().__init__()
        self.a = torch.nn.Linear(input_dim, rank)
        self.b = torch.nn.Linear(rank, output_dim)

    def forward(self, X):
        return self.b(self.a(X))


class Drift(QuadraticPenalty):
    """A custom penalty: the pull toward the parameters at the first step."""

    def __init__(self, *, lam=1.0):
        self.lam = lam

    def initialize(self, net):
        self.anchor_ = [p.detach().clone() for p in net.module_.parameters()]

    def quadratic(self, net):
        return self.anchor_, None, 0.0


class CountBatches(Callback):
    def initialize(self):
        self.count_ = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.count_ += 1


def test_custom_classes_load_only_when_passed(digits_stream, tmp_path):
    X, y, t = digits_stream

    def custom():
        return small(
            module=Bilinear, penalty=Drift(lam=0.1), callbacks=[CountBatches()]
        )

    direct = custom().fit(X, y, task_id=t)
    save(custom().fit(X[t < 2], y[t < 2], task_id=t[t < 2]), tmp_path / "m.skcl")
    for allowed, missing in [
        ((), "CountBatches"),
        ((CountBatches,), "Bilinear"),
        ((CountBatches, Bilinear), "Drift"),
    ]:
        with pytest.raises(ValueError, match=rf"{missing}.*modules=\[{missing}\]"):
            load(tmp_path / "m.skcl", modules=allowed)
    loaded = load(tmp_path / "m.skcl", modules=[Bilinear, Drift, CountBatches])
    loaded.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert same(state_of(loaded), state_of(direct))
    assert dict(loaded.net_.callbacks_)["CountBatches"].count_ == 3 * 2 * 15
    with pytest.raises(TypeError, match="modules must hold classes"):
        load(tmp_path / "m.skcl", modules=[Bilinear(3, 2)])


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"module": torch.nn.Linear(64, 10)}, "params/module"),
        ({"module__activation": lambda: torch.nn.ReLU()}, "params/module__activation"),
        ({"callbacks": [object()]}, "params/callbacks/0"),
        ({"classes": np.array([1 + 2j])}, "params/classes"),
    ],
)
def test_unsupported_values_are_refused_and_nothing_is_written(params, where, tmp_path):
    path = tmp_path / "model.skcl"
    path.write_bytes(b"previous content")
    with pytest.raises(TypeError, match=rf"Cannot store {where}: .*pickle or joblib"):
        save(small(**params), path)
    assert path.read_bytes() == b"previous content"
    assert os.listdir(tmp_path) == ["model.skcl"]
    with pytest.raises(TypeError, match="continual estimators"):
        save(torch.nn.Linear(2, 2), path)


def test_an_interrupted_save_leaves_the_previous_file(
    digits_stream, tmp_path, monkeypatch
):
    X, y, _ = digits_stream
    path = tmp_path / "model.skcl"
    path.write_bytes(b"previous content")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)  # the new file is written
    with pytest.raises(KeyboardInterrupt):
        save(small().fit(X[:50], y[:50]), path)
    assert path.read_bytes() == b"previous content"
    assert os.listdir(tmp_path) == ["model.skcl"]


def test_loading_never_unpickles(digits_stream, tmp_path, monkeypatch):
    X, y, t = digits_stream
    est = make("shrink-perturb").fit(X[t == 0], y[t == 0])
    save(est, tmp_path / "model.skcl")

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling")

    for module, name in [
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
        (torch, "load"),
    ]:
        monkeypatch.setattr(module, name, forbidden)
    loaded = load(tmp_path / "model.skcl")
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


# ------------------------------------------------------------ invalid files
@pytest.fixture(scope="module")
def saved_file(tmp_path_factory, digits_stream):
    X, y, t = digits_stream
    est = small(penalty=EWC(lam=1.0), max_epochs=1)
    est.fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    path = tmp_path_factory.mktemp("saved") / "model.skcl"
    save(est, path)
    return path


def rewritten(path, tmp_path, edit):
    """Write a copy of ``path`` edited by ``edit(doc, tensors)``, checksum updated."""
    doc, tensors = _read(path)
    edit(doc, tensors)
    _write(tmp_path / "edited.skcl", doc, tensors)
    return tmp_path / "edited.skcl"


def owner_entry(doc, *path):
    """The attributes of the owner at ``path`` (estimator, then net_, ...)."""
    attributes = doc["state"]["dict"]["$owner"][1]["dict"]
    for key in path:
        value = attributes[key]
        value = value[0] if isinstance(value, list) else value
        attributes = value["dict"]["$owner"][1]["dict"]
    return attributes


def set_param(name, value):
    def edit(doc, tensors):
        doc["params"]["dict"][name] = value

    return edit


def shrink_tensor(name):
    def edit(doc, tensors):
        tensors[name] = tensors[name][:-1].clone()

    return edit


ESTIMATOR, NET = "state/$owner/1", "state/$owner/1/net_/$owner/1"
TAMPERED = {
    "module tensor of the wrong shape": (
        shrink_tensor(f"{NET}/module_/$module/0/layers.0.weight"),
        r"module_\['layers.0.weight'\] should be a torch.float32 tensor of shape "
        r"\(16, 64\)",
    ),
    "snapshot of the wrong shape": (
        shrink_tensor(f"{ESTIMATOR}/snapshots_/1/layers.3.bias"),
        r"snapshots_\[1\]\['layers.3.bias'\]",
    ),
    "optimizer state of the wrong shape": (
        shrink_tensor(f"{NET}/optimizer_/$optimizer/state/0/momentum_buffer"),
        r"optimizer state 0/momentum_buffer does not match",
    ),
    "penalty state of the wrong shape": (
        shrink_tensor(f"{ESTIMATOR}/penalty_/$owner/1/precision_/0"),
        r"plug-in 0 \(EWC\): precision_\[0\] should be a torch.float32 tensor of "
        r"shape \(16, 64\)",
    ),
    "unknown module class": (
        set_param("module", {"type": "os.system"}),
        r"names the class 'os.system'.*never makes skcl import code.*"
        r"modules=\[system\]",
    ),
    "unknown penalty class": (
        set_param("penalty", {"object": ["builtins.eval", {"dict": {}}]}),
        r"names the class 'builtins.eval'",
    ),
    "invalid parameter": (set_param("lr", -1.0), "lr must be a positive float"),
    "missing entry": (
        lambda doc, tensors: owner_entry(doc, "net_").pop("optimizer_"),
        r"net_ does not hold the state of a skcl._net._ClassifierNet: missing "
        r"\['optimizer_'\]",
    ),
    "missing tensor": (
        lambda doc, tensors: tensors.pop(f"{NET}/module_/$module/0/layers.0.bias"),
        "refers to a tensor '.*layers.0.bias' missing from the file",
    ),
    "unknown kind of entry": (
        set_param(
            "verbose", {"pickle": "gASVAAAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOULg=="}
        ),
        "unknown entry kind 'pickle'",
    ),
    "tasks and snapshots disagree": (
        lambda doc, tensors: owner_entry(doc)["tasks_"].pop(),
        "tasks, snapshots and task index do not agree",
    ),
    "output mask of the wrong shape": (
        lambda doc, tensors: (
            owner_entry(doc, "net_").update(output_mask_={"tensor": "mask"}),
            tensors.update(mask=torch.ones(3, dtype=torch.bool)),
        ),
        r"output_mask should be a bool tensor of shape \(10,\)",
    ),
    "unexpected parameter": (set_param("net_", 1), r"unexpected parameters \['net_'\]"),
    "attribute replacing the net": (
        lambda doc, tensors: owner_entry(doc).update(net_=1),
        r"net_ is not stored as an object's state",
    ),
    "attribute replacing a method": (
        lambda doc, tensors: owner_entry(doc).update(predict=1),
        r"the estimator would overwrite \['predict'\]",
    ),
    "attribute replacing a parameter": (
        lambda doc, tensors: owner_entry(doc).update(lr=1),
        r"the estimator would overwrite \['lr'\]",
    ),
    "unexpected attribute": (
        lambda doc, tensors: owner_entry(doc).update(extra_=1),
        r"unexpected \['extra_'\]",
    ),
    "penalty state replacing a method": (
        lambda doc, tensors: owner_entry(doc, "penalty_").update(loss=1),
        r"penalty_ would overwrite \['loss'\]",
    ),
    "penalty state missing": (
        lambda doc, tensors: owner_entry(doc, "net_").update(plugins_=[]),
        "plugins_ holds 0 objects, not 1",
    ),
    "net of another class": (
        lambda doc, tensors: owner_entry(doc)["net_"]["dict"]["$owner"].__setitem__(
            0, "skcl._net._RegressorNet"
        ),
        r"net_ is stored as a skcl._net._RegressorNet, but the file's classes build "
        r"a skcl._net._ClassifierNet there",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_files_give_a_clear_error(case, saved_file, tmp_path):
    edit, match = TAMPERED[case]
    with pytest.raises(ValueError, match=match):
        load(rewritten(saved_file, tmp_path, edit))


def raw_metadata(path):
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size])["__metadata__"]


@pytest.mark.parametrize("version", ["2", "4"])
def test_other_format_versions_are_refused(saved_file, tmp_path, version):
    """Files of skcl's first format (before the training state had one owner)
    and of later ones are refused with a message naming both versions."""
    _, tensors = _read(saved_file)
    metadata = {**raw_metadata(saved_file), "format_version": version}
    safetensors.torch.save_file(tensors, tmp_path / "v.skcl", metadata=metadata)
    with pytest.raises(
        ValueError, match=rf"format version '{version}'.*reads format version 3"
    ):
        load(tmp_path / "v.skcl")


@pytest.mark.parametrize("rename_state", [False, True])
def test_a_classifier_file_relabelled_as_a_regressor_is_refused(
    saved_file, tmp_path, rename_state
):
    def edit(doc, tensors):
        doc["estimator"] = {"type": "skcl._regressor.ContinualRegressor"}
        for name in ("classes", "multi_head"):
            doc["params"]["dict"].pop(name)
        if rename_state:
            doc["state"]["dict"]["$owner"][0] = "skcl._regressor.ContinualRegressor"

    with pytest.raises(ValueError, match="Cannot load"):
        load(rewritten(saved_file, tmp_path, edit))


@pytest.mark.parametrize("keep", [0, 7, 100, 0.5, -1])
def test_truncated_files_are_refused(keep, saved_file, tmp_path):
    data = saved_file.read_bytes()
    end = int(len(data) * keep) if isinstance(keep, float) else keep
    (tmp_path / "cut.skcl").write_bytes(data[:end])
    with pytest.raises(ValueError, match="not a valid skcl model file"):
        load(tmp_path / "cut.skcl")


def test_corrupted_and_foreign_files_are_refused(saved_file, tmp_path):
    data = bytearray(saved_file.read_bytes())
    data[-3] ^= 0x10
    (tmp_path / "flipped.skcl").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its checksum"):
        load(tmp_path / "flipped.skcl")
    (tmp_path / "pickled.skcl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a valid skcl model file"):
        load(tmp_path / "pickled.skcl")
    safetensors.torch.save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not an skcl model file"):
        load(tmp_path / "plain.safetensors")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_model_loads_on_the_cpu_with_a_warning(saved_file, tmp_path):
    path = rewritten(saved_file, tmp_path, set_param("device", "cuda"))
    with pytest.warns(UserWarning, match="device='cuda'.*loaded on the CPU"):
        loaded = load(path)
    assert loaded.device == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = load(path, device="cpu")
    X = np.zeros((2, 64), dtype=np.float32)
    np.testing.assert_array_equal(explicit.predict_proba(X), loaded.predict_proba(X))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_model_trained_on_the_gpu_loads_on_the_cpu(digits_stream, tmp_path):
    X, y, t = digits_stream
    est = make("ewc+l2init").set_params(device="cuda").fit(X, y, task_id=t)
    loaded = round_trip(est, tmp_path, device="cpu")
    assert loaded.module_.layers[0].weight.device.type == "cpu"
    assert all(f.device.type == "cpu" for f in loaded.penalty_[0].precision_)
    # The GPU's float32 kernels sum in another order: logits off by the forward
    # pass's fan-ins, the softmax's probabilities by less (plus its class sum).
    loaded.module_.eval()
    with torch.no_grad():
        logits = loaded.module_(torch.as_tensor(X, dtype=torch.float32))
    operations = forward_operations(loaded.module_) + logits.shape[1]
    atol = tolerance(operations, logits, torch.float32)
    np.testing.assert_allclose(
        loaded.predict_proba(X), est.predict_proba(X), rtol=0, atol=atol
    )
    loaded.partial_fit(X[t == 2], y[t == 2], task_id=2)


def test_random_byte_flips_are_refused(saved_file, tmp_path):
    """200 files, each with one random bit of one random byte flipped: every
    one is refused with a ValueError (checksum, header or container), none
    loads and none raises anything else."""
    data = saved_file.read_bytes()
    rng = np.random.RandomState(0)
    for _ in range(200):
        flipped = bytearray(data)
        flipped[rng.randint(len(data))] ^= 1 << rng.randint(8)
        path = tmp_path / "flipped.skcl"
        path.write_bytes(bytes(flipped))
        with pytest.raises(ValueError):
            load(path)
