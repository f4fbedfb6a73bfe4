"""The plasticity streams' strategies: the L2 Init paper's best settings.

Kumar, Marklund & Van Roy, "Maintaining Plasticity in Continual Learning via
Regenerative Regularization" (CoLLAs 2025; code skumar9876/L2_Init,
../shared/DESIGN.md section 7): an MLP 784-100-100-10 trained with Adam,
batch 16, each strategy at the paper's best Adam setting (its Tables 3-4).
As in the authors' code, the penalties are added to the loss (Adam's moments
see them: ``penalty_step="explicit"``) and L2 pulls toward the origin (Adam's
``weight_decay``, the same gradient); ReDO resets a dormant unit's incoming
weights to their initial values; CReLU's layers are 91 units wide, the
parameter count of 100 ReLU units.

Table 2's forgetting study (Permuted MNIST, 20 tasks) adds ``ewc`` and
``l2init+ewc``. Their settings are not in the authors' code (its EWC strength
is a command-line value, default 0): the authors' EWC keeps the Fisher and
the anchor of the latest task only (skcl's online EWC with ``decay=0``), its
Fisher the empirical one on 1,000 samples of the task; the strengths are
skcl's choice, see docs/benchmarks.md.
"""

import torch

from ..penalties import EWC, L2Init, ShrinkAndPerturb
from ..plasticity import ContinualBackprop, ReDO

PLASTICITY_STRATEGIES = (
    "naive",
    "l2",
    "l2init",
    "shrink-perturb",
    "redo",
    "cbp",
    "layer-norm",
    "crelu",
)
# Table 2's forgetting study; run by name.
FORGETTING_STRATEGIES = ("ewc", "l2init+ewc")
# The strategies that use no task boundary: trained without task ids.
TASK_FREE = PLASTICITY_STRATEGIES

_BASE = dict(
    module__hidden_sizes=(100, 100),
    optimizer=torch.optim.Adam,
    batch_size=16,
    penalty_step="explicit",
    keep_snapshots=False,
)
# Per problem: epochs per task, each strategy's Adam learning rate, the
# strengths (L2's is Adam's weight decay; EWC's in l2init+ewc too) and the
# plug-ins' settings.
PLASTICITY_REGIMES = {
    "plasticity-permuted": {
        "max_epochs": 1,
        "lr": {
            "naive": 1e-4,
            **dict.fromkeys(PLASTICITY_STRATEGIES[1:], 1e-3),
            **dict.fromkeys(FORGETTING_STRATEGIES, 1e-3),
        },
        # EWC's strength in each: the best final average accuracy over 1, 10,
        # 100 and 1,000 (docs/benchmarks.md, seed 0).
        "lam": {"l2": 1e-2, "l2init": 1e-2, "ewc": 10.0, "l2init+ewc": 100.0},
        "shrink-perturb": {"shrink": 1e-3, "noise": 1e-2},
        "redo": {"tau": 0.0, "period": 625},
        "cbp": {"rho": 1e-3, "maturity": 100, "decay": 0.99},
    },
    "plasticity-random-label": {
        "max_epochs": 400,
        "lr": {
            **dict.fromkeys(PLASTICITY_STRATEGIES, 1e-4),
            **dict.fromkeys(("redo", "cbp", "crelu"), 1e-3),
        },
        "lam": {"l2": 1e-2, "l2init": 1e-2},
        "shrink-perturb": {"shrink": 1e-4, "noise": 1e-2},
        "redo": {"tau": 0.1, "period": 30000},
        "cbp": {"rho": 1e-3, "maturity": 100, "decay": 0.99},
    },
}
# The EWC of the authors' code: the latest task's Fisher and anchor only.
_EWC = dict(mode="online", decay=0.0, n_samples=1000)
_CRELU = {"module__activation": "crelu", "module__hidden_sizes": (91, 91)}


def plasticity_params(strategy, regime, overrides):
    """Return the estimator parameters of ``strategy`` on a plasticity stream.

    ``overrides`` as in :func:`strategy_params`; ``lam`` sets the strength
    of L2 (Adam's weight decay), L2 Init and EWC (in ``l2init+ewc``, EWC's);
    ``--hidden`` sets the layers (CReLU's included, unnarrowed).
    """
    from ._presets import OVERRIDES

    family = PLASTICITY_REGIMES[regime]
    if strategy not in family["lr"]:
        raise ValueError(
            f"{strategy} has no preset on {regime}; choose from "
            f"{', '.join(family['lr'])}."
        )
    if overrides.get("momentum") is not None:
        raise ValueError(
            f"--momentum sets SGD's momentum; {regime} trains with Adam "
            "(--lr and the other options apply)."
        )
    params = dict(_BASE, lr=family["lr"][strategy], max_epochs=family["max_epochs"])
    lam = overrides.get("lam")
    lam = family["lam"].get(strategy) if lam is None else lam
    if strategy == "l2":
        params["optimizer__weight_decay"] = lam
    elif strategy == "l2init":
        params["penalty"] = L2Init(lam=lam)
    elif strategy == "ewc":
        params["penalty"] = EWC(lam=lam, **_EWC)
    elif strategy == "l2init+ewc":
        l2init = family["lam"]["l2init"]
        params["penalty"] = [L2Init(lam=l2init), EWC(lam=lam, **_EWC)]
    elif strategy == "shrink-perturb":
        params["penalty"] = ShrinkAndPerturb(**family["shrink-perturb"])
    elif strategy == "redo":
        params["penalty"] = ReDO(**family["redo"], reinit="initial")
    elif strategy == "cbp":
        params["penalty"] = ContinualBackprop(**family["cbp"])
    elif strategy == "layer-norm":
        params["module__layer_norm"] = True
    elif strategy == "crelu":
        params.update(_CRELU)
    params.update(
        {
            OVERRIDES[k]: v
            for k, v in overrides.items()
            if k in OVERRIDES and v is not None
        }
    )
    return params
