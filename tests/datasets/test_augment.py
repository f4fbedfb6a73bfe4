"""RandomCropFlip: the crops and flips by hand, its seeding, the engine's step."""

import numpy as np
import pytest
import torch
from _tolerance import tolerance, training_operations

from skcl import ContinualClassifier, Step, load, save
from skcl._engine import fit_together
from skcl.datasets import RandomCropFlip
from skcl.modules import CNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Net:
    def __init__(self, seed):
        self.generator_ = torch.Generator().manual_seed(seed)


def by_hand(X, padding, flip, fill, seed):
    """Loops over images and pixels, with the draws in the documented order."""
    generator = torch.Generator().manual_seed(seed)
    n, channels, height, width = X.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(X)
    for k in range(n):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    column = width - 1 - j if flip and flips[k] else j
                    r = i + int(offsets[0, k]) - padding
                    s = column + int(offsets[1, k]) - padding
                    inside = 0 <= r < height and 0 <= s < width
                    out[k, c, i, j] = X[k, c, r, s] if inside else fill
    return out


@pytest.mark.parametrize(
    ("padding", "flip", "fill"), [(4, True, 0.0), (1, False, -1.5), (0, True, 0.0)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crops_and_flips_equal_a_loop_by_hand(padding, flip, fill, seed):
    X = torch.arange(6 * 2 * 5 * 4, dtype=torch.float32).reshape(6, 2, 5, 4)
    step = Step(X, torch.zeros(6, dtype=torch.long), None)
    RandomCropFlip(padding=padding, flip=flip, fill=fill).before_forward(
        _Net(seed), step
    )
    expected = by_hand(X, padding, flip, fill, seed)
    torch.testing.assert_close(step.X, expected, rtol=0, atol=0)
    assert step.inputs is step.X


def test_a_tiny_image_by_hand():
    # [[1, 2], [3, 4]] padded by 1: the crop at offset (i, j) is rows i..i+1
    # and columns j..j+1 of the 4x4 padded image.
    padded = [[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]]
    X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    seen = set()
    for seed in range(100):
        generator = torch.Generator().manual_seed(seed)
        i, j = (int(v) for v in torch.randint(0, 3, (2, 1), generator=generator))
        flipped = bool(torch.rand(1, generator=generator) < 0.5)
        crop = [row[j : j + 2] for row in padded[i : i + 2]]
        if flipped:
            crop = [row[::-1] for row in crop]
        step = Step(X, torch.zeros(1, dtype=torch.long), None)
        RandomCropFlip(padding=1).before_forward(_Net(seed), step)
        assert step.X[0, 0].tolist() == crop
        seen.add((i, j, flipped))
    assert len(seen) == 18  # every offset, flipped and not


def test_rows_added_before_it_are_kept_and_other_shapes_refused():
    X = torch.randn(3, 1, 4, 4)
    step = Step(X, torch.zeros(3, dtype=torch.long), None)
    extra = torch.randn(2, 1, 4, 4)
    step.inputs = torch.cat([X, extra])
    RandomCropFlip().before_forward(_Net(0), step)
    torch.testing.assert_close(step.inputs[3:], extra, rtol=0, atol=0)
    assert torch.equal(step.inputs[:3], step.X)
    flat = Step(torch.randn(3, 16), torch.zeros(3, dtype=torch.long), None)
    with pytest.raises(ValueError, match=r"augments images .* shape \(3, 16\)"):
        RandomCropFlip().before_forward(_Net(0), flat)


def images(n=40):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, 3, 8, 8)).astype(np.float32)
    return X, np.arange(n) % 4, np.repeat([0, 1], n // 2)


def small(module=CNN, **params):
    return ContinualClassifier(
        module=module,
        module__channels=(4,),
        module__hidden_size=8,
        batch_size=10,
        max_epochs=2,
        classes=np.arange(4),
        **params,
    )


def weights(clf):
    return [p.detach().clone() for p in clf.module_.parameters()]


def test_training_is_seeded_by_the_estimator_and_changes_what_it_learns():
    X, y, t = images()
    first = weights(small(penalty=RandomCropFlip(), random_state=0).fit(X, y, t))
    again = weights(small(penalty=RandomCropFlip(), random_state=0).fit(X, y, t))
    other = weights(small(penalty=RandomCropFlip(), random_state=1).fit(X, y, t))
    plain = weights(small(random_state=0).fit(X, y, t))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, plain, strict=True))


def test_stacked_candidates_augment_as_each_alone():
    X, y, t = images()
    X = X.astype(np.float64)

    class CNN64(CNN):
        def __init__(self, input_shape, output_dim, **kwargs):
            super().__init__(input_shape, output_dim, **kwargs)
            self.double()

    def make(seed):
        return small(CNN64, penalty=RandomCropFlip(), random_state=seed)

    stacked = [make(0), make(1)]
    _, reason = fit_together(stacked, X, y, t)
    assert reason is None
    for seed, clf in enumerate(stacked):
        alone = make(seed).fit(X, y, task_id=t)
        operations = training_operations(alone.module_, 2 * len(X))
        for a, b in zip(weights(clf), weights(alone), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=tolerance(operations, b))


def test_saved_with_the_estimator(tmp_path):
    X, y, t = images()
    direct = small(penalty=RandomCropFlip(padding=2), random_state=0).fit(X, y, t)
    first = small(penalty=RandomCropFlip(padding=2), random_state=0)
    first.fit(X[t == 0], y[t == 0], task_id=t[t == 0])
    save(first, tmp_path / "m.skcl")
    loaded = load(tmp_path / "m.skcl")
    assert loaded.penalty_.get_params() == {"padding": 2, "flip": True, "fill": 0.0}
    loaded.partial_fit(X[t == 1], y[t == 1], task_id=1)
    for a, b in zip(weights(loaded), weights(direct), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"padding": -1}, "padding"), ({"flip": "yes"}, "flip"), ({"fill": None}, "fill")],
)
def test_bad_parameters_are_refused_before_training(params, message):
    X, y, t = images()
    clf = small(penalty=RandomCropFlip(**params))
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, task_id=t)
    assert not hasattr(clf, "net_")
