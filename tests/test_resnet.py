"""The ResNet-18 modules: shapes, parameter counts, gradients, training, files."""

import numpy as np
import pytest
import torch
from _tolerance import tolerance, training_operations

from skcl import ContinualClassifier, Plugin, load, save
from skcl._engine import fit_together
from skcl.modules import ReducedResNet18, ResNet18

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def counted_by_hand(channels, width, outputs):
    """ResNet-18's parameters, layer by layer: convolutions without bias,
    batch normalization (scale and shift), 1x1 shortcuts, a linear head."""
    total = channels * 9 * width + 2 * width
    width_in = width
    for stage in range(4):
        width_out = width * 2**stage
        for block in range(2):
            cin = width_in if block == 0 else width_out
            total += cin * 9 * width_out + 2 * width_out
            total += width_out * 9 * width_out + 2 * width_out
            if block == 0 and (stage > 0 or cin != width_out):
                total += cin * width_out + 2 * width_out
        width_in = width_out
    return total + 8 * width * outputs + outputs


@pytest.mark.parametrize(
    ("cls", "channels", "width", "outputs", "published"),
    [
        # Split CIFAR-100 (GEM, A-GEM, Stable SGD), stated in the docstring.
        (ReducedResNet18, 3, 20, 100, 1_109_240),
        # The CIFAR-10 ResNet-18 of most papers: 11.17 million parameters.
        (ResNet18, 3, 64, 10, 11_173_962),
        (ReducedResNet18, 1, 20, 5, None),
        (ResNet18, 2, 3, 7, None),
    ],
)
def test_parameter_counts(cls, channels, width, outputs, published):
    defaults = {ReducedResNet18: 20, ResNet18: 64}
    kwargs = {} if width == defaults[cls] else {"width": width}
    net = cls(input_shape=(channels, 32, 32), output_dim=outputs, **kwargs)
    assert n_parameters(net) == counted_by_hand(channels, width, outputs)
    if published is not None:
        assert n_parameters(net) == published


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 64), (1, 8, 8), (2, 5, 7)])
def test_output_shape_for_any_image_size(shape):
    net = ReducedResNet18(input_shape=shape, output_dim=6, width=2).eval()
    assert net(torch.zeros(4, *shape)).shape == (4, 6)
    # Three stride-2 stages: the last feature map is ceil(size / 8) across.
    features = net.stages(net.conv1(torch.zeros(1, *shape)))
    assert features.shape[1:] == (16, *(-(-s // 8) for s in shape[1:]))


def test_input_shape_must_be_an_image():
    with pytest.raises(ValueError, match="ReducedResNet18 needs input_shape"):
        ReducedResNet18(input_shape=(3072,), output_dim=10)


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    net = ReducedResNet18(input_shape=(2, 4, 4), output_dim=3, width=1).double()
    X = torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in net.named_parameters()]
    params = tuple(p.detach().requires_grad_() for p in net.parameters())

    def forward(X, *values):
        state = dict(zip(names, values, strict=True))
        return torch.func.functional_call(net, state, (X,))

    # Training mode: batch statistics, so each output depends on every image.
    assert torch.autograd.gradcheck(forward, (X, *params), fast_mode=True)


def test_dropout_is_in_every_block():
    net = ReducedResNet18(input_shape=(3, 8, 8), output_dim=2, dropout=0.5)
    dropouts = [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in dropouts] == [0.5] * 8
    net.eval()
    X = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(net(X), net(X), rtol=0, atol=0)


def tiny_stream():
    """Two tasks of 2 classes, 8x8 images of 3 channels, each class its colour."""
    rng = np.random.RandomState(0)
    y = np.tile(np.arange(4), 10)
    X = rng.normal(size=(40, 3, 8, 8)).astype(np.float32)
    X[:, 0] += y[:, None, None] % 2
    X[:, 1] += y[:, None, None] // 2
    return X, y, y // 2


def tiny(module=ReducedResNet18, **params):
    return ContinualClassifier(
        module=module,
        module__width=4,
        batch_size=10,
        max_epochs=3,
        lr=0.05,
        classes=np.arange(4),
        random_state=0,
        **params,
    )


def test_trains_multi_head_through_the_estimator():
    X, y, t = tiny_stream()
    clf = tiny(multi_head=True).fit(X, y, task_id=t)
    assert clf.module_.conv1.in_channels == 3
    assert clf.module_.linear.out_features == 4
    assert clf.task_classes_ == {0: [0, 1], 1: [2, 3]}
    # The task picks the head: each prediction is one of its task's classes.
    np.testing.assert_array_equal(clf.predict(X, task_id=t) // 2, t)
    # Batch normalization kept statistics of the inputs it trained on.
    assert not torch.equal(clf.module_.bn1.running_mean, torch.zeros(4))
    assert int(clf.module_.bn1.num_batches_tracked) == 2 * 3 * 2


def test_saved_and_loaded_estimator_predicts_and_continues_exactly(tmp_path):
    X, y, t = tiny_stream()
    direct = tiny(multi_head=True).fit(X, y, task_id=t)
    first = tiny(multi_head=True).fit(X[t == 0], y[t == 0], task_id=t[t == 0])
    save(first, tmp_path / "resnet.skcl")
    loaded = load(tmp_path / "resnet.skcl")
    for a, b in zip(
        loaded.module_.state_dict().values(),
        first.module_.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(
        loaded.predict_proba(X, task_id=0), first.predict_proba(X, task_id=0)
    )
    loaded.partial_fit(X[t == 1], y[t == 1], task_id=1)
    np.testing.assert_array_equal(
        loaded.predict_proba(X, task_id=t), direct.predict_proba(X, task_id=t)
    )


class _Float64ResNet(ReducedResNet18):
    def __init__(self, input_shape, output_dim, *, width=20):
        super().__init__(input_shape, output_dim, width=width)
        self.double()


def test_candidates_stacked_by_vmap_equal_each_trained_alone():
    X, y, t = tiny_stream()
    X = X.astype(np.float64)

    def make(seed):
        return tiny(_Float64ResNet).set_params(random_state=seed, max_epochs=1)

    stacked = [make(0), make(1)]
    outcomes, reason = fit_together(stacked, X, y, t)
    assert reason is None and outcomes == stacked
    for seed, clf in enumerate(stacked):
        alone = make(seed).fit(X, y, task_id=t)
        # Buffers too: the running statistics are stacked with the parameters.
        for a, b in zip(
            clf.module_.state_dict().values(),
            alone.module_.state_dict().values(),
            strict=True,
        ):
            bound = tolerance(training_operations(alone.module_, len(X)), b)
            torch.testing.assert_close(a, b, rtol=0, atol=bound)


class _FailsInTask1(Plugin):
    def after_step(self, net, step):
        if net.task_index_ == 1:
            raise RuntimeError("stop")


def test_a_failed_chunk_leaves_the_batch_statistics_as_they_were():
    X, y, t = tiny_stream()
    clf = tiny(multi_head=True, penalty=_FailsInTask1())
    clf.fit(X[t == 0], y[t == 0], task_id=t[t == 0])
    before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    with pytest.raises(RuntimeError, match="stop"):
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    after = clf.module_.state_dict()
    assert before.keys() == after.keys()
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=0)
