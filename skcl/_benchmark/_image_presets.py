"""The image streams' strategies and regimes: Stable SGD's Table 2 on CIFAR-100.

Split CIFAR-100 follows the code behind Stable SGD's Table 2 (Mirzadeh et
al., 2020; ../shared/DESIGN.md section 7): the reduced ResNet-18, batch 10,
one epoch per task. Naive SGD and Stable SGD as ``stable_sgd/main.py`` and
``replicate_experiment_2.sh`` run them: SGD with momentum 0.8 created anew at
each task, lr 0.01 without decay (naive), lr 0.1 decayed by 0.8 from the first
task on (``lr * gamma ** task`` with tasks counted from 1: skcl's lr 0.08) and
dropout 0.5 (Stable SGD), lr floored at 5e-5. EWC, A-GEM, ER and the
multi-task baseline as A-GEM's code (``conv_split_cifar.py`` in
``replicate_cifar.sh``) runs them: plain SGD at lr 0.03, EWC's strength 10,
one example per class in memory, memory batches of 10.

Seq-CIFAR-10 and Seq-Tiny-ImageNet have no published setting here: ResNet-18,
batch 32, plain SGD at lr 0.1, a memory of 200 samples (the DER paper's
smallest); one epoch per task unless ``--epochs`` (the DER paper trains 50 on
CIFAR-10 and 100 on Tiny ImageNet). They are starting points, not tuned.
"""

from ..modules import ReducedResNet18, ResNet18
from ..penalties import EWC
from ..replay import AGEM, ER

# Table 2's strategies; "joint-budget" is A-GEM's multi-task baseline.
IMAGE_STRATEGIES = ("naive", "ewc", "agem", "er", "stable-sgd", "joint-budget", "joint")
_SEQ = {
    "base": dict(module=ResNet18, batch_size=32, max_epochs=1, momentum=0.0, lr=0.1),
    "stable": dict(lr_decay=0.8, module__dropout=0.5),
    "memory": {},
    "memory_strategies": (),
    "lam": {"ewc": 10.0},
}
IMAGE_REGIMES = {
    "split-cifar100": {
        "base": dict(
            module=ReducedResNet18,
            batch_size=10,
            max_epochs=1,
            momentum=0.8,
            reset_optimizer=True,
            min_lr=5e-5,
            lr=0.01,
        ),
        "stable": dict(lr=0.08, lr_decay=0.8, module__dropout=0.5),
        "memory": dict(lr=0.03, momentum=0.0),
        "memory_strategies": ("ewc", "agem", "er", "joint-budget"),
        "lam": {"ewc": 10.0},
        "replay": {"per_class": 1, "memory_batch_size": 10},
    },
    "seq-cifar10": dict(_SEQ, replay={"per_class": 20, "memory_batch_size": 32}),
    "seq-tiny-imagenet": dict(_SEQ, replay={"per_class": 1, "memory_batch_size": 32}),
}


def image_params(strategy, regime, overrides, *, n_classes):
    """Return the estimator parameters of ``strategy`` on an image stream.

    ``overrides`` as in :func:`strategy_params`. A-GEM keeps ``per_class``
    examples of each class (``memory_size`` overrides it), ER a reservoir of
    ``per_class * n_classes`` samples (``memory_size`` is the total): each
    class belongs to one task.
    """
    from ._presets import OVERRIDES

    if strategy not in IMAGE_STRATEGIES:
        raise ValueError(
            f"{strategy} has no preset on {regime}; choose from "
            f"{', '.join(IMAGE_STRATEGIES)}."
        )
    if overrides.get("hidden") is not None:
        raise ValueError(
            f"--hidden sets an MLP's hidden layers; {regime} trains a ResNet-18 "
            "(--dropout and the optimizer's options apply)."
        )
    family = IMAGE_REGIMES[regime]
    params = dict(family["base"])
    if strategy in family["memory_strategies"]:
        params.update(family["memory"])
    if strategy == "stable-sgd":
        params.update(family["stable"])
    params.update(
        {
            OVERRIDES[k]: v
            for k, v in overrides.items()
            if k in OVERRIDES and v is not None
        }
    )
    lam, size = overrides.get("lam"), overrides.get("memory_size")
    replay = family["replay"]
    if strategy == "ewc":
        params["penalty"] = EWC(lam=family["lam"]["ewc"] if lam is None else lam)
    elif strategy == "agem":
        params["replay"] = AGEM(
            memory_size=size or replay["per_class"],
            memory_batch_size=replay["memory_batch_size"],
        )
    elif strategy == "er":
        params["replay"] = ER(
            memory_size=size or replay["per_class"] * n_classes,
            memory_batch_size=replay["memory_batch_size"],
        )
    return params
