"""A device is checked against what torch reports before anything is built on
it, and no module is imported from a device's name (a parameter's or a file's)."""

import sys

import numpy as np
import pytest
import torch
from test_interruption import make

import skcl
from skcl._params import available_devices


def unavailable_devices():
    available = available_devices()
    kinds = ("hpu", "xpu", "meta", "mps", "cuda", "mtia", "lazy")
    devices = [k for k in kinds if k not in available]
    devices += [f"{k}:{n}" for k, n in available.items() if k != "cpu"]
    return devices


@pytest.mark.parametrize("device", unavailable_devices())
def test_an_unavailable_device_is_refused_naming_what_torch_reports(
    digits_stream, device
):
    X, y, _ = digits_stream
    modules = set(sys.modules)
    clf = make(device=device)
    with pytest.raises(ValueError) as caught:
        clf.fit(X[:20], y[:20])
    message = str(caught.value)
    assert f"device {device!r} is not available" in message
    assert "torch reports 1 cpu device" in message
    assert not hasattr(clf, "net_")
    kind = device.split(":")[0]
    assert f"torch.{kind}" not in set(sys.modules) - modules


def test_a_device_set_between_calls_is_refused_before_any_change(digits_stream):
    X, y, t = digits_stream
    clf = make(max_epochs=1).fit(X[t == 0], y[t == 0])
    proba = clf.predict_proba(X)
    clf.set_params(device="hpu")
    with pytest.raises(ValueError, match="device 'hpu' is not available"):
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert clf.tasks_ == [0]
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


@pytest.mark.parametrize("device", ["hpu", "xpu", "meta"])
def test_a_file_naming_an_unavailable_device_loads_on_the_cpu(
    digits_stream, tmp_path, device
):
    X, y, _ = digits_stream
    clf = make(max_epochs=1).fit(X[:50], y[:50])
    clf.set_params(device=device)  # as saved on a machine that has one
    skcl.save(clf, tmp_path / "model.skcl")
    modules = set(sys.modules)
    with pytest.warns(UserWarning, match=f"device='{device}'.*loaded on the CPU"):
        loaded = skcl.load(tmp_path / "model.skcl")
    assert f"torch.{device}" not in set(sys.modules) - modules
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_the_cpu_is_always_available():
    assert available_devices()["cpu"] == 1
    assert torch.device("cpu").type in available_devices()
