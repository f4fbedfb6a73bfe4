"""The file format under skcl's persistence: a typed JSON codec, a checked container."""

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from _equality import same

import skcl
from skcl import _file_format as ff
from skcl._file_format import Decoder, Encoder, FormatError, read, write
from skcl._persistence import FORMAT_VERSION

FORMAT = {"format_name": "demo", "version": 3}


class Scaled:
    """A scikit-learn-style object, rebuilt from its constructor arguments."""

    built = 0

    def __init__(self, factor=1.0, *, name="x"):
        type(self).built += 1
        self.factor = factor
        self.name = name

    def get_params(self, deep=True):
        return {"factor": self.factor, "name": self.name}


class Other(Scaled):
    pass


class Unrelated:
    built = 0

    def __init__(self):
        type(self).built += 1

    def get_params(self, deep=True):
        return {}


CLASSES = {"demo.Scaled": Scaled, "demo.Other": Other, "demo.Unrelated": Unrelated}
NAMES = {cls: name for name, cls in CLASSES.items()}


def round_trip(value, path, *, classes=CLASSES, object_bases=(Scaled,)):
    """Encode ``value``, write and read it back, decode it."""
    encoder = Encoder(NAMES, object_bases=object_bases)
    write(path, encoder.encode(value, "value"), encoder.tensors, **FORMAT)
    doc, tensors = read(path, **FORMAT)
    return Decoder(tensors, classes, object_bases=object_bases).decode(doc, "value")


def raw_file(path, state, tensors=None, **metadata):
    """Write a safetensors file holding the JSON text ``state``, checksum valid."""
    tensors = tensors or {}
    metadata = {
        "format": "demo",
        "format_version": "3",
        "sha256": ff._digest(state, tensors),
        "state": state,
        **metadata,
    }
    safetensors.torch.save_file(tensors, path, metadata=metadata)
    return path


def every_kind():
    rng = np.random.RandomState(0)
    rng.normal(size=3)
    return {
        "scalars": [None, True, False, -3, 2**40, 1.5, float("inf"), "é/x", ""],
        "list": [1, [2.0, ["three"]], []],
        "tuple": (1, (2,), ()),
        "str keys": {"a/b": 1, "": {}},
        "other keys": {1: "one", (2, "b"): [3], None: 0.5, "s": 1, 2.5: True},
        "tensors": [
            torch.arange(6.0).reshape(2, 3).t(),
            torch.ones(2, dtype=torch.bfloat16),
            torch.tensor([True, False]),
            torch.tensor(7),
            torch.zeros(0, 3, dtype=torch.float64),
            torch.randn(3, requires_grad=True),
        ],
        "arrays": [
            np.linspace(0, 1, 5),
            np.arange(6, dtype=np.int32).reshape(2, 3)[:, ::2],
            np.array([True, False]),
            np.ones(3, np.float16),
            np.array([1, 2], dtype=np.uint64),
        ],
        "str array": np.array([["a", "bc"], ["d", ""]]),
        "object array": np.array(["a", 1, None, [2, "c"]], dtype=object),
        "numpy scalars": [
            np.float32(1.5),
            np.float64(-0.25),
            np.int64(-2),
            np.uint8(255),
            np.bool_(True),
            np.str_("s"),
        ],
        "classes": [Scaled, Unrelated],
        "devices": [torch.device("cpu"), torch.device("cuda", 1)],
        "dtypes": list(ff.TORCH_DTYPES.values()),
        "RandomState": rng,
        "object": Scaled([1, (2, 3)], name="y"),
        "objects": [Other(), Scaled()],
    }


def test_every_supported_kind_round_trips(tmp_path):
    value = every_kind()
    loaded = round_trip(value, tmp_path / "f.safetensors")
    assert loaded.pop("classes") == value.pop("classes")  # same() calls get_params
    assert same(loaded, value)
    assert all(t.device.type == "cpu" for t in loaded["tensors"])
    assert not loaded["tensors"][-1].requires_grad
    assert loaded["RandomState"].normal() == value["RandomState"].normal()
    assert type(loaded["object"]) is Scaled
    assert loaded["object"].factor == [1, (2, 3)]


def test_big_endian_arrays_come_back_native(tmp_path):
    array = np.arange(4, dtype=">f4")
    loaded = round_trip(array, tmp_path / "f.safetensors")
    assert loaded.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(loaded, array)


def test_shared_tensors_are_stored_once_and_decoded_shared(tmp_path):
    weight, array = torch.ones(3), np.arange(3.0)
    value = {"a": weight, "b": [weight, (weight,)], "c": array, "d": {1: array}}
    encoder = Encoder({})
    tree = encoder.encode(value, "v")
    assert list(encoder.tensors) == ["v/a", "v/c"]
    write(tmp_path / "f", tree, encoder.tensors, **FORMAT)
    loaded = Decoder(*read(tmp_path / "f", **FORMAT)[::-1], {}).decode(tree, "v")
    assert loaded["a"] is loaded["b"][0] is loaded["b"][1][0]
    assert loaded["c"] is loaded["d"][1]
    assert same(loaded, value)


def test_clashing_tensor_paths_stay_apart():
    encoder = Encoder({})
    encoder.encode({"a/b": torch.zeros(1), "a": {"b": torch.ones(1)}}, "v")
    assert sorted(encoder.tensors) == ["v/a/b", "v/a/b'"]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (object(), "values of type object"),
        (lambda: 1, "values of type function"),
        (np.array([1 + 2j]), "values of type ndarray"),
        (torch.float8_e4m3fn, "the dtype torch.float8_e4m3fn is not one of"),
        (torch.nn.Linear(2, 2), "values of type Linear"),
    ],
)
def test_unsupported_values_are_refused(value, match):
    with pytest.raises(TypeError, match=rf"Cannot store v/0: {match}"):
        Encoder({}).encode([value], "v")


def test_self_referential_values_are_refused():
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        Encoder({}).encode(loop, "v")


def nested(depth):
    tree = []
    for _ in range(depth - 1):
        tree = [tree]
    return tree


def test_json_nested_2000_levels_is_refused_without_recursion_error(tmp_path):
    path = raw_file(tmp_path / "deep", "[" * 2000 + "]" * 2000)
    with pytest.raises(FormatError, match="nested deeper than 64 levels"):
        read(path, **FORMAT)
    skcl_file = raw_file(
        tmp_path / "deep.skcl",
        "[" * 2000 + "]" * 2000,
        format="skcl",
        format_version=str(FORMAT_VERSION),
    )
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        skcl.load(skcl_file)
    with pytest.raises(FormatError, match="nested deeper than 64 levels"):
        Decoder({}, {}).decode(nested(2000), "v")


def test_depth_bound_is_exact(tmp_path):
    write(tmp_path / "ok", nested(64), {}, **FORMAT)
    assert read(tmp_path / "ok", **FORMAT)[0] == nested(64)
    assert Decoder({}, {}).decode(nested(64), "v") == nested(64)
    raw_file(tmp_path / "deep", "[" * 65 + "]" * 65)
    with pytest.raises(FormatError, match="nested deeper"):
        read(tmp_path / "deep", **FORMAT)
    with pytest.raises(FormatError, match="nested deeper"):
        Decoder({}, {}).decode(nested(65), "v")
    with pytest.raises(ValueError, match="nested deeper"):
        write(tmp_path / "deep", nested(65), {}, **FORMAT)


def test_dtype_names_outside_the_allow_list_import_nothing():
    code = textwrap.dedent(
        """
        import sys
        from skcl._file_format import Decoder, FormatError

        before = set(sys.modules)
        names = ["_dynamo", "_inductor", "onnx", "_export", "nn", "Tensor",
                 "__class__", "float", "torch.float32", "Float32", "", "float8"]
        for name in names:
            try:
                Decoder({}, {}).decode({"dtype": name}, "x")
            except FormatError:
                continue
            raise SystemExit(f"{name!r} was accepted")
        assert set(sys.modules) == before, sorted(set(sys.modules) - before)[:5]
        assert "torch._dynamo" not in sys.modules
        """
    )
    root = Path(ff.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    "tree",
    [
        {"scalar": ["<M8[ns]", 0]},
        {"scalar": ["<c16", 0]},
        {"scalar": ["<f8", [1.0]]},
        {"array": ["|V8", [1], [0]]},
        {"array": ["<f8", [1], [0.5]]},
        {"array": ["i4,f8", [1], [0]]},
        {"array": ["<U99999999", [8], ["a"] * 8]},
        {"array": ["<U1", [2], ["a"]]},
        {"array": ["<U1", [-1], ["a"]]},
    ],
)
def test_numpy_dtypes_of_other_kinds_are_refused(tree):
    with pytest.raises(FormatError, match="v: "):
        Decoder({}, {}).decode(tree, "v")


def test_oversized_header_is_refused(tmp_path):
    path = tmp_path / "big"
    path.write_bytes((ff.MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b"{}")
    with pytest.raises(FormatError, match=f"header would take {2**26 + 1} bytes"):
        read(path, **FORMAT)


def test_bounds_on_the_file_size_and_when_writing(tmp_path, monkeypatch):
    write(tmp_path / "f", {"a": 1}, {"w": torch.zeros(100)}, **FORMAT)
    monkeypatch.setattr(ff, "MAX_FILE_BYTES", 200)
    with pytest.raises(FormatError, match="too large"):
        read(tmp_path / "f", **FORMAT)
    monkeypatch.setattr(ff, "MAX_HEADER_BYTES", 100)
    with pytest.raises(ValueError, match="over what read accepts"):
        write(tmp_path / "g", {"a": "x" * 100}, {}, **FORMAT)
    assert os.listdir(tmp_path) == ["f"]


def test_unknown_classes_are_refused_and_never_imported():
    assert "this" not in sys.modules
    for tree in [{"type": "this.Zen"}, {"object": ["this.Zen", {"dict": {}}]}]:
        with pytest.raises(
            FormatError,
            match=r"names the class 'this.Zen'.*never makes skcl import code.*"
            r"pass the class itself.*modules=\[Zen\]",
        ):
            Decoder({}, CLASSES, object_bases=(Scaled,)).decode(tree, "v")
    assert "this" not in sys.modules


def test_objects_are_built_only_from_the_allowed_bases():
    tree = Encoder(NAMES).encode(Unrelated(), "v")
    assert tree == {"object": ["demo.Unrelated", {"dict": {}}]}
    built = Unrelated.built
    for bases, match in [((Scaled,), "not a Scaled"), ((), "not a class this")]:
        with pytest.raises(FormatError, match=f"demo.Unrelated is {match}"):
            Decoder({}, CLASSES, object_bases=bases).decode(tree, "v")
    assert Unrelated.built == built
    with pytest.raises(TypeError, match="values of type Other"):
        Encoder({}).encode(Other(), "v")  # neither named nor of a base


@pytest.mark.parametrize(
    ("tree", "match"),
    [
        ({"pickle": "gASV"}, "unknown entry kind 'pickle'"),
        ({"tensor": "w", "dtype": "float32"}, "unexpected entry"),
        ({"tensor": "missing"}, "tensor 'missing' missing from the file"),
        ({"tensor": ["w"]}, "malformed 'tensor' entry"),
        ({"tuple": {"a": 1}}, "malformed 'tuple' entry"),
        ({"items": [[1]]}, "items must be"),
        ({"object": ["demo.Scaled", [1, 2]]}, "parameters must be a dict"),
        ({"device": "nowhere"}, "invalid device"),
        ({"RandomState": ["MT19937", [], 0]}, "malformed 'RandomState' entry"),
        ((1, 2), "unexpected entry"),
    ],
)
def test_malformed_trees_are_refused(tree, match):
    decoder = Decoder({"w": torch.zeros(1)}, CLASSES, object_bases=(Scaled,))
    with pytest.raises(FormatError, match=match):
        decoder.decode(tree, "v")


def test_read_checks_format_version_and_checksum(tmp_path):
    write(tmp_path / "f", {"a": 1}, {"w": torch.zeros(2)}, **FORMAT)
    with pytest.raises(
        FormatError, match=r"demo format version '3'; .* reads format version 4 only"
    ):
        read(tmp_path / "f", format_name="demo", version=4)
    with pytest.raises(FormatError, match="not an other model file"):
        read(tmp_path / "f", format_name="other", version=3)
    raw_file(tmp_path / "g", '{"a": 1}', sha256="0" * 64)
    with pytest.raises(FormatError, match="does not match its checksum"):
        read(tmp_path / "g", **FORMAT)
    (tmp_path / "h").write_bytes(b"\x08" + b"\0" * 7 + b"not json")
    with pytest.raises(FormatError, match="not a valid demo model file"):
        read(tmp_path / "h", **FORMAT)


def test_write_syncs_the_file_then_the_directory(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        mode = os.fstat(fd)
        events.append(("fsync", stat.S_ISDIR(mode.st_mode), mode.st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace",))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "f"
    write(path, {"a": 1}, {"w": torch.zeros(2)}, **FORMAT)
    assert events == [
        ("fsync", False, path.stat().st_ino),
        ("replace",),
        ("fsync", True, tmp_path.stat().st_ino),
    ]


def test_directories_that_cannot_be_opened_are_not_synced(tmp_path, monkeypatch):
    calls, real_open = [], os.open

    def no_directories(path, flags, *args, **kwargs):
        if os.path.isdir(path):
            raise PermissionError("directories cannot be opened here")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_directories)
    monkeypatch.setattr(os, "fsync", calls.append)
    write(tmp_path / "f", {"a": 1}, {}, **FORMAT)
    assert len(calls) == 1
    assert read(tmp_path / "f", **FORMAT)[0] == {"a": 1}


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_an_interrupted_write_leaves_the_old_file(step, tmp_path, monkeypatch):
    path = tmp_path / "f"
    write(path, {"old": True}, {"w": torch.zeros(2)}, **FORMAT)
    before = path.read_bytes()

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, step, interrupted)
    with pytest.raises(KeyboardInterrupt):
        write(path, {"new": True}, {"w": torch.ones(2)}, **FORMAT)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["f"]
