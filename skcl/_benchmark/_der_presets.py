"""The DER paper's protocol and best settings per method and memory size.

Buzzega et al., "Dark Experience for General Continual Learning" (NeurIPS
2020), as Mammoth's ``utils/best_args.py`` lists them (../shared/DESIGN.md
section 7): an MLP 784-100-100-10 with Xavier-uniform weights, plain SGD
(no momentum, no weight decay), one epoch per task; batch 10 on Seq-MNIST,
128 on P-MNIST and R-MNIST. A setting given as three values is for memories
of 200, 500 and 5,120 samples; another memory size takes the column of the
largest of these at most its size (200's below 200).
"""

from ..penalties import LwF
from ..replay import AGEM, DER, DERPP, ER, GEM, BiC, ICaRL

SIZES = (200, 500, 5120)
_BASE = dict(
    module__hidden_sizes=(100, 100),
    module__init="xavier_uniform",
    momentum=0.0,
    max_epochs=1,
)
DER_REGIMES = {
    "der-seq-mnist": {"base": dict(_BASE, batch_size=10)},
    "der-permuted-mnist": {"base": dict(_BASE, batch_size=128)},
    "der-rotated-mnist": {"base": dict(_BASE, batch_size=128)},
}
# GEM's gamma is its margin; LwF's alpha its lam. BiC has no DER-paper
# setting: it takes iCaRL's; JOINT none listed: it takes SGD's. oEWC and SI
# are left out: their strengths follow Mammoth's scaling, not checked
# against skcl's lam.
_SEQ = {
    "naive": dict(lr=0.03),
    "joint": dict(lr=0.03),
    "lwf": dict(lr=0.03, lam=1.0, temperature=2.0, optimizer__weight_decay=5e-4),
    "er": dict(lr=(0.01, 0.1, 0.1), memory_batch_size=10),
    "gem": dict(lr=(0.01, 0.03, 0.1), margin=(1.0, 0.5, 1.0)),
    "agem": dict(lr=0.1, memory_batch_size=128),
    "icarl": dict(lr=0.1, memory_batch_size=10),
    "bic": dict(lr=0.1, memory_batch_size=10),
    "der": dict(
        lr=(0.03, 0.03, 0.1), memory_batch_size=(10, 128, 128), alpha=(0.2, 1.0, 0.5)
    ),
    "der++": dict(
        lr=(0.03, 0.03, 0.1),
        memory_batch_size=(128, 10, 64),
        alpha=(0.2, 1.0, 0.2),
        beta=(1.0, 0.5, 0.5),
    ),
}
BEST = {
    "der-seq-mnist": _SEQ,
    "der-permuted-mnist": {
        "naive": dict(lr=0.2),
        "joint": dict(lr=0.2),
        "er": dict(lr=0.2, memory_batch_size=128),
        "gem": dict(lr=0.1, margin=0.5),
        "agem": dict(lr=0.1, memory_batch_size=128),
        "der": dict(lr=0.2, memory_batch_size=128, alpha=(1.0, 1.0, 0.5)),
        "der++": dict(
            lr=(0.1, 0.2, 0.2),
            memory_batch_size=128,
            alpha=(1.0, 1.0, 0.5),
            beta=(1.0, 0.5, 1.0),
        ),
    },
    "der-rotated-mnist": {
        "naive": dict(lr=0.2),
        "joint": dict(lr=0.2),
        "er": dict(lr=0.2, memory_batch_size=128),
        "gem": dict(lr=0.01, margin=0.5),
        "agem": dict(lr=(0.1, 0.3, 0.3), memory_batch_size=128),
        "der": dict(lr=0.2, memory_batch_size=128, alpha=(1.0, 0.5, 0.5)),
        "der++": dict(
            lr=(0.1, 0.2, 0.2),
            memory_batch_size=128,
            alpha=(1.0, 0.5, 0.5),
            beta=(0.5, 1.0, 0.5),
        ),
    },
}
_REPLAYS = {
    "er": ER,
    "der": DER,
    "der++": DERPP,
    "icarl": ICaRL,
    "bic": BiC,
    "agem": lambda **kw: AGEM(memory="reservoir", **kw),
}
_ESTIMATOR = ("lr", "optimizer__weight_decay")


def der_params(strategy, regime, overrides, *, n_tasks):
    """Return the estimator parameters of ``strategy`` in the DER paper's setting.

    ``overrides`` as in :func:`strategy_params`; ``memory_size`` (default
    200) picks the column of the settings and sizes the memory (GEM's is
    split equally between the tasks, as the DER-era code fills it).
    """
    from ._presets import OVERRIDES

    best = BEST[regime]
    if strategy not in best:
        raise ValueError(
            f"{strategy} has no setting in the DER paper on {regime}; choose from "
            f"{', '.join(best)}."
        )
    size = overrides.get("memory_size") or SIZES[0]
    column = max([i for i, s in enumerate(SIZES) if s <= size], default=0)
    setting = {
        k: v[column] if isinstance(v, tuple) else v for k, v in best[strategy].items()
    }
    params = dict(DER_REGIMES[regime]["base"])
    params.update({k: setting.pop(k) for k in _ESTIMATOR if k in setting})
    params.update(
        {
            OVERRIDES[k]: v
            for k, v in overrides.items()
            if k in OVERRIDES and v is not None
        }
    )
    if strategy == "lwf":
        lam = overrides.get("lam")
        setting["lam"] = setting["lam"] if lam is None else lam
        params["penalty"] = LwF(**setting)
    elif strategy == "gem":
        params["replay"] = GEM(memory_size=max(1, size // n_tasks), **setting)
    elif strategy in _REPLAYS:
        params["replay"] = _REPLAYS[strategy](memory_size=size, **setting)
    return params
