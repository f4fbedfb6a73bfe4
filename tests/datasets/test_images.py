"""The image loaders against small archives in the official formats."""

import io
import os
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from _tolerance import tolerance

from skcl.datasets import (
    fetch_cifar10,
    fetch_cifar100,
    fetch_tiny_imagenet,
    normalize_channels,
)

CIFAR10_NAMES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def cifar_records(labels, images):
    """Records as the binary versions store them: label bytes, then the
    image's red, green and blue planes, each row-major."""
    return b"".join(
        bytes(list(label)) + image.tobytes()
        for label, image in zip(labels, images, strict=True)
    )


def random_images(rng, n, shape=(3, 32, 32)):
    return rng.randint(0, 256, size=(n, *shape)).astype(np.uint8)


def write_files(root, files):
    for name, content in files.items():
        path = os.path.join(root, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)


def write_tar_gz(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


@pytest.fixture
def cifar10():
    """Six files of 3 records each, and what the loader must return."""
    rng = np.random.RandomState(0)
    images = random_images(rng, 18)
    labels = rng.randint(0, 10, size=18)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    files = {
        f"cifar-10-batches-bin/{name}": cifar_records(
            labels[3 * i : 3 * i + 3, None], images[3 * i : 3 * i + 3]
        )
        for i, name in enumerate(names)
    }
    files["cifar-10-batches-bin/batches.meta.txt"] = (
        "\n".join(CIFAR10_NAMES) + "\n\n"
    ).encode()
    return files, images, labels


@pytest.fixture
def cifar100():
    rng = np.random.RandomState(1)
    images = random_images(rng, 7)
    fine = rng.randint(0, 100, size=7)
    coarse = rng.randint(0, 20, size=7)
    both = np.stack([coarse, fine], 1)
    root = "cifar-100-binary"
    files = {
        f"{root}/train.bin": cifar_records(both[:4], images[:4]),
        f"{root}/test.bin": cifar_records(both[4:], images[4:]),
        f"{root}/fine_label_names.txt": "\n".join(
            f"fine{i}" for i in range(100)
        ).encode(),
        f"{root}/coarse_label_names.txt": "\n".join(
            f"coarse{i}" for i in range(20)
        ).encode(),
    }
    return files, images, fine, coarse


@pytest.mark.parametrize("packed", [False, True])
def test_cifar10_from_the_folder_or_the_archive(cifar10, tmp_path, packed):
    files, images, labels = cifar10
    if packed:
        write_tar_gz(tmp_path / "cifar-10-binary.tar.gz", files)
    else:
        write_files(tmp_path, files)
    data = fetch_cifar10(tmp_path, download_if_missing=False)
    np.testing.assert_array_equal(data.X_train, images[:15])
    np.testing.assert_array_equal(data.X_test, images[15:])
    np.testing.assert_array_equal(data.y_train, labels[:15])
    np.testing.assert_array_equal(data.y_test, labels[15:])
    assert data.X_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert list(data.target_names) == CIFAR10_NAMES
    # A record's first 1,024 pixel bytes are the red plane of the image.
    record = files["cifar-10-batches-bin/data_batch_1.bin"][:3073]
    assert data.X_train[0, 0, 0, 1] == record[2] and data.y_train[0] == record[0]
    assert data.X_train[0, 1, 31, 31] == record[1 + 1024 + 1023]
    pixels = images[:15].astype(np.float64) / 255
    np.testing.assert_allclose(data.channel_mean, pixels.mean((0, 2, 3)))
    np.testing.assert_allclose(data.channel_std, pixels.std((0, 2, 3)))
    X_train, X_test, y_train, y_test = fetch_cifar10(
        tmp_path, download_if_missing=False, return_X_y=True
    )
    np.testing.assert_array_equal(X_test, data.X_test)


def test_cifar10_from_data_home_in_the_environment(cifar10, tmp_path, monkeypatch):
    write_files(tmp_path, cifar10[0])
    monkeypatch.setenv("SKCL_DATA", str(tmp_path))
    assert len(fetch_cifar10(download_if_missing=False).y_train) == 15


@pytest.mark.parametrize("packed", [False, True])
def test_cifar100_fine_and_coarse_labels(cifar100, tmp_path, packed):
    files, images, fine, coarse = cifar100
    if packed:
        write_tar_gz(tmp_path / "cifar-100-binary.tar.gz", files)
    else:
        write_files(tmp_path, files)
    data = fetch_cifar100(tmp_path, download_if_missing=False)
    np.testing.assert_array_equal(data.X_train, images[:4])
    np.testing.assert_array_equal(data.X_test, images[4:])
    np.testing.assert_array_equal(data.y_train, fine[:4])
    np.testing.assert_array_equal(data.coarse_test, coarse[4:])
    assert data.target_names[99] == "fine99" and data.coarse_names[19] == "coarse19"


def test_a_truncated_file_is_refused_with_its_name(cifar10, tmp_path):
    files, _, _ = cifar10
    name = "cifar-10-batches-bin/data_batch_3.bin"
    files[name] = files[name][:-100]
    write_files(tmp_path, files)
    with pytest.raises(ValueError, match=r"data_batch_3.bin holds 9119 bytes, not a"):
        fetch_cifar10(tmp_path, download_if_missing=False)


def test_records_of_another_size_are_refused(cifar100, tmp_path):
    files, *_ = cifar100
    # CIFAR-100's records (2 label bytes) where CIFAR-10's (1) are expected.
    cifar10 = {
        f"cifar-10-batches-bin/{n}": files["cifar-100-binary/test.bin"]
        for n in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    }
    cifar10["cifar-10-batches-bin/batches.meta.txt"] = "\n".join(CIFAR10_NAMES).encode()
    write_files(tmp_path, cifar10)
    with pytest.raises(ValueError, match=r"data_batch_1.bin holds 9222 bytes.*3,073-"):
        fetch_cifar10(tmp_path, download_if_missing=False)


def test_labels_out_of_range_are_refused(cifar10, tmp_path):
    files, _, _ = cifar10
    name = "cifar-10-batches-bin/test_batch.bin"
    files[name] = bytes([12]) + files[name][1:]
    write_files(tmp_path, files)
    with pytest.raises(ValueError, match=r"test_batch.bin has a label of 12, beyond"):
        fetch_cifar10(tmp_path, download_if_missing=False)


@pytest.mark.parametrize("packed", [False, True])
def test_a_missing_file_is_named(cifar100, tmp_path, packed):
    files, *_ = cifar100
    del files["cifar-100-binary/test.bin"]
    if packed:
        write_tar_gz(tmp_path / "cifar-100-binary.tar.gz", files)
    else:
        write_files(tmp_path, files)
    with pytest.raises(FileNotFoundError, match=r"test.bin"):
        fetch_cifar100(tmp_path, download_if_missing=False)


@pytest.mark.parametrize("fetch", [fetch_cifar10, fetch_cifar100, fetch_tiny_imagenet])
def test_a_missing_archive_says_where_to_put_it(fetch, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)official archive.*SKCL_DATA"):
        fetch(tmp_path, download_if_missing=False)
    assert os.listdir(tmp_path) == []


def jpeg(image):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


def decoded(content):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


@pytest.fixture
def tiny_imagenet():
    """Three classes, two training and one validation image each (one grey)."""
    pytest.importorskip("PIL")
    rng = np.random.RandomState(2)
    wnids = ["n03", "n01", "n02"]  # as in wnids.txt: not sorted
    root = "tiny-imagenet-200"
    files = {
        f"{root}/wnids.txt": "\n".join(wnids).encode(),
        f"{root}/words.txt": b"n01\tgoldfish, Carassius auratus\nn02\tcat\n"
        b"n03\tdog\nn09\tunused\n",
    }
    train, annotations, val = {}, [], []
    for wnid in wnids:
        for i in range(2):
            name = f"{root}/train/{wnid}/images/{wnid}_{i}.JPEG"
            files[name] = jpeg(rng.randint(0, 256, (64, 64, 3)).astype(np.uint8))
            train[(wnid, i)] = decoded(files[name])
        files[f"{root}/train/{wnid}/{wnid}_boxes.txt"] = b""
    for i, wnid in enumerate(["n02", "n03", "n01"]):
        grey = rng.randint(0, 256, (64, 64)).astype(np.uint8)
        files[f"{root}/val/images/val_{i}.JPEG"] = jpeg(grey)
        annotations.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
        val.append(decoded(files[f"{root}/val/images/val_{i}.JPEG"]))
    files[f"{root}/val/val_annotations.txt"] = "\n".join(annotations).encode()
    return files, train, val


@pytest.mark.parametrize("packed", [False, True])
def test_tiny_imagenet_from_the_folder_or_the_zip(tiny_imagenet, tmp_path, packed):
    files, train, val = tiny_imagenet
    if packed:
        with zipfile.ZipFile(tmp_path / "tiny-imagenet-200.zip", "w") as archive:
            for name, content in files.items():
                archive.writestr(name, content)
    else:
        write_files(tmp_path, files)
    data = fetch_tiny_imagenet(tmp_path, download_if_missing=False, cache=False)
    assert list(data.wnids) == ["n01", "n02", "n03"]
    assert list(data.target_names) == ["goldfish, Carassius auratus", "cat", "dog"]
    np.testing.assert_array_equal(data.y_train, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(data.y_test, [1, 2, 0])
    assert data.X_train.shape == (6, 3, 64, 64) and data.X_train.dtype == np.uint8
    expected = [train[(w, i)] for w in ("n01", "n02", "n03") for i in range(2)]
    np.testing.assert_array_equal(
        data.X_train, np.stack(expected).transpose(0, 3, 1, 2)
    )
    # A grey image: three equal channels.
    np.testing.assert_array_equal(data.X_test, np.stack(val).transpose(0, 3, 1, 2))
    assert np.array_equal(data.X_test[:, 0], data.X_test[:, 2])
    assert sorted(os.listdir(tmp_path)) == (
        ["tiny-imagenet-200.zip"] if packed else ["tiny-imagenet-200"]
    )


def test_tiny_imagenet_cached_copy_is_read_instead(tiny_imagenet, tmp_path):
    write_files(tmp_path, tiny_imagenet[0])
    first = fetch_tiny_imagenet(tmp_path, download_if_missing=False)
    assert os.path.isfile(tmp_path / "tiny-imagenet-200.npz")
    os.remove(tmp_path / "tiny-imagenet-200" / "wnids.txt")
    again = fetch_tiny_imagenet(tmp_path, download_if_missing=False)
    for key in ("X_train", "y_train", "X_test", "y_test", "wnids", "target_names"):
        np.testing.assert_array_equal(again[key], first[key])
    with pytest.raises(FileNotFoundError, match=r"wnids.txt is missing"):
        fetch_tiny_imagenet(tmp_path, download_if_missing=False, cache=False)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda f, r: f.pop(f"{r}/train/n02/images/n02_1.JPEG") and None,
            None,
            None,
        ),
        (
            lambda f, r: f.update({f"{r}/val/images/val_1.JPEG": b"not a jpeg"}),
            ValueError,
            r"val/images/val_1.JPEG is not an image",
        ),
        (
            lambda f, r: f.update(
                {f"{r}/val/images/val_1.JPEG": jpeg(np.zeros((32, 64, 3), np.uint8))}
            ),
            ValueError,
            r"val_1.JPEG is 64x32 pixels; Tiny ImageNet's images are 64x64",
        ),
        (
            lambda f, r: f.pop(f"{r}/val/images/val_2.JPEG"),
            FileNotFoundError,
            r"val_2.JPEG",
        ),
        (
            lambda f, r: f.update({f"{r}/wnids.txt": b"n01\nn02\n"}),
            ValueError,
            r"val_annotations.txt names classes not in wnids.txt \(\['n03'\]\)",
        ),
    ],
)
def test_tiny_imagenet_layout_is_checked(
    tiny_imagenet, tmp_path, change, error, message
):
    files, _, _ = tiny_imagenet
    change(files, "tiny-imagenet-200")
    write_files(tmp_path, files)
    if error is None:  # a class with fewer images is still the layout
        data = fetch_tiny_imagenet(tmp_path, download_if_missing=False, cache=False)
        np.testing.assert_array_equal(data.y_train, [0, 0, 1, 2, 2])
        return
    with pytest.raises(error, match=message):
        fetch_tiny_imagenet(tmp_path, download_if_missing=False, cache=False)


def test_tiny_imagenet_without_pillow_says_what_to_install(
    tiny_imagenet, tmp_path, monkeypatch
):
    import sys

    write_files(tmp_path, tiny_imagenet[0])
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install Pillow \(or pip install skcl"):
        fetch_tiny_imagenet(tmp_path, download_if_missing=False, cache=False)


def test_normalize_channels_by_hand():
    X = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2) * 10
    mean, std = np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.25, 0.5])
    out = normalize_channels(X, mean, std)
    assert out.dtype == np.float32 and out.shape == X.shape
    for c in range(3):
        expected = (X[:, c].astype(np.float64) / 255 - mean[c]) / std[c]
        # float32: the two constants, the product and the difference round.
        terms = [X[:, c] / (255 * std[c]), mean[c] / std[c]]
        bound = tolerance(4, np.max([np.abs(t).max() for t in terms]), torch.float32)
        np.testing.assert_allclose(out[:, c], expected, rtol=0, atol=bound)
    with pytest.raises(ValueError, match=r"one mean and std per channel"):
        normalize_channels(X, mean[:2], std[:2])
    with pytest.raises(ValueError, match=r"std must be positive"):
        normalize_channels(X, mean, np.zeros(3))
