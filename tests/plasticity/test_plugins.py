"""ReDO and Continual Backprop against hand-written references; their state."""

import copy
import math

import numpy as np
import pytest
import torch
from _equality import same
from _tolerance import tolerance, training_operations
from sklearn.base import clone
from skorch.callbacks import Callback
from torch import nn

from skcl import ContinualClassifier, Step, load, save
from skcl._engine import fit_together
from skcl._state import capture
from skcl.modules import CNN, MLP
from skcl.plasticity import ContinualBackprop, ReDO

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(plugin, optimizer=torch.optim.SGD, **params):
    """A 3-4-2 ReLU network, float64, fitted one epoch on 12 rows."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    defaults = dict(
        module=module, optimizer=optimizer, batch_size=4, max_epochs=1, random_state=0
    )
    if optimizer is torch.optim.SGD:
        defaults["momentum"] = 0.9
    return ContinualClassifier(penalty=plugin, **{**defaults, **params})


@pytest.fixture
def rows():
    rng = np.random.RandomState(0)
    return rng.normal(size=(12, 3)), np.arange(12) % 2


def parameters(clf):
    return [p.detach().clone() for p in clf.module_.parameters()]


def state(clf, name):
    return [
        clf.net_.optimizer_.state[p][name].clone() for p in clf.module_.parameters()
    ]


def flat(clf):
    return torch.cat([p.detach().flatten() for p in clf.module_.parameters()])


def draw(generator, shape, bound):
    return (
        torch.rand(shape, generator=generator, dtype=torch.float64) * 2 * bound - bound
    )


@pytest.mark.parametrize("reinit", ["random", "initial"])
def test_redo_recycles_the_dormant_units_as_a_hand_written_pass(rows, reinit):
    X, y = rows
    redo = ReDO(tau=0.2, period=1, reinit=reinit)
    clf = tiny(redo).fit(X, y)
    initial = [t.clone() for pair in clf.penalty_.initial_ for t in pair]
    with torch.no_grad():  # unit 1 dead, unit 3 barely active: both dormant
        W1, b1 = list(clf.module_.parameters())[:2]
        W1[1], b1[1] = 0.0, -1.0
        W1[3], b1[3] = 0.0, 0.01
    W1, b1, W2, b2 = before = parameters(clf)
    momentum = state(clf, "momentum_buffer")
    recycled = clf.penalty_.n_recycled_[0]
    Xb = torch.as_tensor(X[:4])
    # By hand: the scores, the units, what they become.
    h = torch.relu(Xb @ W1.T + b1)
    activity = [float(h[:, i].abs().mean()) for i in range(4)]
    units = [i for i in range(4) if activity[i] / np.mean(activity) <= 0.2]
    assert units == [1, 3]
    expected = [t.clone() for t in before]
    for unit in units:
        if reinit == "initial":
            expected[0][unit], expected[1][unit] = initial[0][unit], initial[1][unit]
        expected[2][:, unit] = 0.0
    if reinit == "random":  # a whole layer's weights, then biases: their rows
        g = torch.Generator().manual_seed(5)
        expected[0][units] = draw(g, (4, 3), 1 / math.sqrt(3))[units]
        expected[1][units] = draw(g, (4,), 1 / math.sqrt(3))[units]
    clf.net_.generator_ = torch.Generator().manual_seed(5)
    clf.penalty_.after_step(clf.net_, Step(Xb, torch.as_tensor(y[:4]), None))
    for p, q in zip(parameters(clf), expected, strict=True):
        assert torch.equal(p, q)
    # The optimizer's momentum of the incoming and outgoing weights is reset.
    reset = [torch.zeros_like(m, dtype=torch.bool) for m in momentum]
    reset[0][units], reset[1][units], reset[2][:, units] = True, True, True
    for now, old, mask in zip(state(clf, "momentum_buffer"), momentum, reset):
        assert torch.equal(now, torch.where(mask, 0.0, old))
    assert clf.penalty_.n_recycled_ == [recycled + 2]


def test_redo_acts_every_period_steps_and_keeps_the_optimizer_if_asked(rows):
    X, y = rows
    redo = ReDO(tau=0.5, period=2, reset_optimizer=False)
    clf = tiny(redo).fit(X, y)  # 3 steps: one pass, at step 2
    assert clf.penalty_.n_steps_ == 3
    momentum, before = state(clf, "momentum_buffer"), parameters(clf)
    step = Step(torch.as_tensor(X[:4]), torch.as_tensor(y[:4]), None)
    clf.penalty_.after_step(clf.net_, step)  # step 4: a pass
    assert clf.penalty_.n_recycled_[0] > 0
    assert all(
        torch.equal(a, b) for a, b in zip(state(clf, "momentum_buffer"), momentum)
    )
    changed = parameters(clf)
    clf.penalty_.after_step(clf.net_, step)  # step 5: none
    assert all(torch.equal(a, b) for a, b in zip(parameters(clf), changed))
    assert not all(torch.equal(a, b) for a, b in zip(changed, before))


def test_continual_backprop_replaces_units_as_a_hand_written_loop(rows):
    X, y = rows
    cbp = ContinualBackprop(rho=0.3, maturity=2, decay=0.9)
    clf = tiny(cbp, optimizer=torch.optim.Adam, lr=0.01)
    clf.fit(X, y)  # 3 steps: no unit older than 2 before the third, which replaces 1
    params = parameters(clf)
    moments = state(clf, "exp_avg"), state(clf, "exp_avg_sq")
    # Continue by hand from the plug-in's state, on batches of the rows.
    Xs = [torch.as_tensor(X[i : i + 4]) for i in (0, 4, 8, 0, 4)]
    penalty = clf.penalty_
    saved = copy.deepcopy((penalty.ages_, penalty.utilities_, penalty.mean_features_))
    ref_params = [p.clone() for p in params]
    ages, utilities, means = (list(map(float, t[0])) for t in saved)
    expected, age, utility, mean, resets = reference_cbp_from(
        ref_params, Xs, ages, utilities, means, penalty.pending_[0]
    )
    clf.net_.generator_ = torch.Generator().manual_seed(3)
    for Xb in Xs:
        clf.penalty_.after_step(
            clf.net_, Step(Xb, torch.zeros(4, dtype=torch.long), None)
        )
    # Each step: a feature (3 multiply-adds and a bias), the outgoing magnitude
    # (2), the running means and the absorbed bias (4): 10 roundings per step.
    bound = tolerance(10 * len(Xs), torch.cat([p.flatten() for p in expected]))
    for p, q in zip(parameters(clf), expected, strict=True):
        torch.testing.assert_close(p, q, atol=bound, rtol=0)
    assert penalty.ages_[0].tolist() == age
    torch.testing.assert_close(
        penalty.utilities_[0],
        torch.tensor(utility, dtype=torch.float64),
        atol=bound,
        rtol=0,
    )
    torch.testing.assert_close(
        penalty.mean_features_[0],
        torch.tensor(mean, dtype=torch.float64),
        atol=bound,
        rtol=0,
    )
    replaced = sorted({i for units in resets for i in units})
    assert replaced and penalty.n_replaced_ == [1 + sum(map(len, resets))]
    # Adam's moments of the replaced units' weights are 0, the others kept.
    for now, old in zip((state(clf, "exp_avg"), state(clf, "exp_avg_sq")), moments):
        kept = [i for i in range(4) if i not in replaced]
        assert (now[0][replaced] == 0).all() and (now[1][replaced] == 0).all()
        assert (now[2][:, replaced] == 0).all()
        assert torch.equal(now[0][kept], old[0][kept])
        assert torch.equal(now[2][:, kept], old[2][:, kept])
        assert torch.equal(now[3], old[3])


def reference_cbp_from(params, Xs, ages, utilities, means, pending):
    """The hand-written loop, from a given state (rho 0.3, maturity 2, decay 0.9)."""
    W1, b1, W2, b2 = params
    rho, maturity, decay = 0.3, 2, 0.9
    generator = torch.Generator().manual_seed(3)
    n = W1.shape[0]
    age, utility, mean = [int(a) for a in ages], utilities, means
    resets = []
    for Xb in Xs:
        h = torch.relu(Xb @ W1.T + b1)
        for i in range(n):
            age[i] += 1
            contribution = float(h[:, i].abs().mean() * W2[:, i].abs().sum())
            utility[i] = decay * utility[i] + (1 - decay) * contribution
            mean[i] = decay * mean[i] + (1 - decay) * float(h[:, i].mean())
        eligible = [i for i in range(n) if age[i] > maturity]
        pending += rho * len(eligible)
        count = int(pending)
        pending -= count
        corrected = {i: utility[i] / (1 - decay ** age[i]) for i in eligible}
        units = sorted(eligible, key=lambda i: (corrected[i], i))[:count]
        for i in units:
            b2 += W2[:, i] * mean[i] / (1 - decay ** age[i])
            W2[:, i] = 0.0
        if units:
            W1[units] = draw(generator, (len(units), 3), 1 / math.sqrt(3))
            b1[units] = 0.0
        for i in units:
            age[i], utility[i], mean[i] = 0, 0.0, 0.0
        resets.append(units)
    return [W1, b1, W2, b2], age, utility, mean, resets


@pytest.fixture(scope="module")
def stream():
    """Three permuted-digits tasks of 60 images, float64."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    tasks = [X[:60, rng.permutation(64)] / 16 for _ in range(3)]
    return np.vstack(tasks), np.tile(y[:60], 3), np.repeat([0, 1, 2], 60)


def digits_net(**params):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 10)
    ).double()
    defaults = dict(module=module, batch_size=10, max_epochs=2, random_state=0)
    return ContinualClassifier(**{**defaults, **params})


PLUGINS = {
    "redo": lambda: ReDO(tau=0.3, period=4),
    "redo-initial": lambda: ReDO(tau=0.3, period=4, reinit="initial"),
    "cbp": lambda: ContinualBackprop(rho=0.02, maturity=5),
}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("seeds", [(0, 0), (0, 1)], ids=["one-seed", "seeds"])
@pytest.mark.parametrize("name", list(PLUGINS))
def test_a_stack_equals_its_candidates_alone(stream, name, seeds, optimizer):
    X, y, t = stream
    opt = dict(momentum=0.9) if optimizer == "sgd" else dict(optimizer=torch.optim.Adam)
    base = digits_net(penalty=PLUGINS[name](), **opt)
    grid = [dict(lr=lr, random_state=s) for lr, s in zip((0.01, 0.05), seeds)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    alone = [clone(base).set_params(**p).fit(X, y, task_id=t) for p in grid]
    assert reason is None
    for a, b in zip(together, alone, strict=True):
        changed = getattr(b.penalty_, "n_recycled_", None) or b.penalty_.n_replaced_
        assert changed[0] > 0
        bound = tolerance(training_operations(b.module_, 2 * len(X)), flat(b))
        for key, value in vars(b.penalty_).items():
            mine = getattr(a.penalty_, key)
            if key in ("utilities_", "mean_features_", "initial_"):
                torch.testing.assert_close(mine, value, atol=bound, rtol=0)
            else:
                assert same(mine, value), key
        for p, q in zip(parameters(a), parameters(b), strict=True):
            torch.testing.assert_close(p, q, atol=bound, rtol=0)
        for p, q in zip(
            a.net_.optimizer_.state.values(), b.net_.optimizer_.state.values()
        ):
            for key in q:
                torch.testing.assert_close(p[key], q[key], atol=bound, rtol=0)


class FailAt(Callback):
    """Raise at the given epoch end of the second task."""

    def on_epoch_end(self, net, **kwargs):
        if net.task_index_ == 1 and len(net.history) == 3:
            raise KeyboardInterrupt


@pytest.mark.parametrize("name", list(PLUGINS))
def test_a_failed_chunk_rolls_the_state_back(stream, name):
    X, y, t = stream
    clf = digits_net(penalty=PLUGINS[name](), callbacks=[FailAt()])
    clf.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=np.arange(10))
    before = rolled_back(clf)
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert same(rolled_back(clf), before)


def rolled_back(clf):
    """The plug-in's state, the parameters, the optimizer's state, the tasks."""
    return copy.deepcopy(
        (
            capture(clf.penalty_),
            parameters(clf),
            clf.net_.optimizer_.state_dict(),
            clf.tasks_,
            len(clf.net_.history),
        )
    )


@pytest.mark.parametrize("name", list(PLUGINS))
def test_saved_and_loaded_it_continues_exactly(stream, name, tmp_path):
    X, y, t = stream
    X = X.astype(np.float32)
    make = lambda: digits_net(  # noqa: E731
        module=MLP,
        module__hidden_sizes=(16,),
        module__dropout=0.2,
        penalty=PLUGINS[name](),
    )
    direct = make().fit(X, y, task_id=t)
    first = t < 2
    saved = make().fit(X[first], y[first], task_id=t[first])
    save(saved, tmp_path / "plastic.skcl")
    loaded = load(tmp_path / "plastic.skcl")
    assert same(capture(loaded.penalty_), capture(saved.penalty_))
    loaded.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert same(capture(loaded.penalty_), capture(direct.penalty_))
    for p, q in zip(parameters(loaded), parameters(direct), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "name, attribute, value, message",
    [
        ("cbp", "ages_", lambda v: [-v[0]], "ages_ holds negative values"),
        ("cbp", "utilities_", lambda v: [v[0][:3]], "utilities_ should hold one"),
        ("cbp", "pending_", lambda v: [-1.0], "pending_ and n_replaced_"),
        ("redo", "_layers", lambda v: [(0, 1, None, None, "ReLU", 0, 3)], "_layers"),
        ("redo-initial", "initial_", lambda v: [v[0][:1]], "initial_"),
    ],
)
def test_a_loaded_state_that_does_not_fit_is_refused(
    stream, name, attribute, value, message
):
    X, y, t = stream
    clf = digits_net(penalty=PLUGINS[name](), max_epochs=1).fit(X[:60], y[:60])
    setattr(clf.penalty_, attribute, value(getattr(clf.penalty_, attribute)))
    with pytest.raises(ValueError, match=message):
        clf.penalty_.check_state(clf.net_, None, None)


@pytest.mark.parametrize("plugin", [ReDO(), ContinualBackprop()])
@pytest.mark.parametrize("network", ["cnn", "crelu"])
def test_networks_without_identified_units_are_refused_before_training(plugin, network):
    X = np.random.RandomState(0).normal(size=(20, 1, 8, 8)).astype(np.float32)
    params = {"cnn": dict(module=CNN), "crelu": dict(module__activation="crelu")}
    clf = ContinualClassifier(penalty=plugin, max_epochs=1, **params[network])
    name = type(plugin).__name__
    with pytest.raises(TypeError, match=f"{name} finds the hidden units"):
        clf.fit(X if network == "cnn" else X.reshape(20, -1), np.arange(20) % 2)
    assert not hasattr(clf, "tasks_")


@pytest.mark.parametrize("name", list(PLUGINS))
def test_they_run_task_free_chunk_after_chunk(stream, name):
    """No task ids: one task, its state carried from chunk to chunk."""
    X, y, _ = stream
    clf = digits_net(penalty=PLUGINS[name](), max_epochs=1)
    chunked = clone(clf)
    for rows in np.array_split(np.arange(len(X)), 3):
        chunked.partial_fit(X[rows], y[rows], classes=np.arange(10))
    assert chunked.tasks_ == [0]
    penalty = chunked.penalty_
    if isinstance(penalty, ReDO):
        assert penalty.n_steps_ == len(X) // 10  # 18 steps, in 3 chunks
    else:
        # Some unit lived through the 18 steps of the 3 chunks.
        assert int(penalty.ages_[0].max()) == len(X) // 10
        assert sum(penalty.n_replaced_) > 0


@pytest.mark.parametrize(
    "plugin, key",
    [
        (ReDO(period=0), "penalty__period"),
        (ReDO(tau=-0.1), "penalty__tau"),
        (ReDO(reinit="zeros"), "penalty__reinit"),
        (ContinualBackprop(rho=1.5), "penalty__rho"),
        (ContinualBackprop(decay=1.0), "penalty__decay"),
        (ContinualBackprop(maturity=-1), "penalty__maturity"),
    ],
)
def test_bad_parameters_are_refused_naming_them_before_training(rows, plugin, key):
    X, y = rows
    clf = tiny(plugin)
    with pytest.raises(ValueError, match=key):
        clf.fit(X, y)
    assert not hasattr(clf, "tasks_")


@pytest.mark.parametrize(
    "module",
    [
        lambda: MLP(6, 3, hidden_sizes=(5, 4), layer_norm=True, dropout=0.3),
        lambda: nn.Sequential(
            nn.Flatten(),
            nn.Linear(6, 5),
            nn.LayerNorm(5, bias=False),
            nn.GELU(),
            nn.Linear(5, 4),
            nn.Tanh(),
            nn.Linear(4, 3, bias=False),
        ),
    ],
    ids=["mlp", "sequential"],
)
def test_the_hidden_features_are_the_networks_own(module):
    """What the plug-ins score: each activation's output, dropout off."""
    from skcl.plasticity._units import hidden_features, hidden_layers

    torch.manual_seed(0)
    module = module().eval()
    layers = [tuple(layer) for layer in hidden_layers(module, "test")]
    outputs = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: outputs.append(o))
        for m in module.modules()
        if type(m) in (nn.ReLU, nn.GELU, nn.Tanh)
    ]
    X = torch.randn(7, 6)
    module(X)
    for hook in hooks:
        hook.remove()
    features = hidden_features(layers, list(module.parameters()), X)
    assert len(features) == len(outputs) == 2
    for mine, theirs in zip(features, outputs, strict=True):
        assert torch.equal(mine, theirs)


def test_activations_with_other_arguments_are_refused():
    module = nn.Sequential(nn.Linear(3, 4), nn.ELU(alpha=2.0), nn.Linear(4, 2))
    with pytest.raises(TypeError, match=r"it holds ELU\(alpha=2.0\)"):
        tiny(ReDO(), module=module).fit(np.zeros((4, 3)), [0, 1, 0, 1])
