"""The declared search space of each method for `mmfedrec tune`, by setting name.

Every federated method searches the same client steps, so the baselines get the tuning budget
ours gets; a method searches only the settings it reads (a history for the mixture of experts on
time-ordered data, the content's share for methods with item content, Adam's step for central
ones). An item-vector learning rate is searched only with plain SGD item steps, which read it.
`augmentation_space` is what `mmfedrec tune --target augmentation` searches instead: how many
pseudo-items, their weight and use, and the denoiser's sampling, with the model's settings fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmfedrec.config.methods import MethodSpec
from mmfedrec.config.tree import AUTO_HISTORY


@dataclass(frozen=True)
class Param:
    """One searched setting: a float range (on a log scale when `log`) or a list of choices."""

    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple = ()


CLIENT_STEPS = {
    "lr": Param(1e-3, 1.0, log=True),
    "shared_lr": Param(1e-3, 0.3, log=True),
    "negatives": Param(choices=(4, 8, 16)),
    "loss": Param(choices=("bce", "bpr", "softmax")),
    "row_optimizer": Param(choices=("adam", "sgd")),
    "lr_schedule": Param(choices=("constant", "cosine")),
}
SGD_ROW_LR = Param(1.0, 100.0, log=True)  # searched only when row_optimizer is "sgd"
CENTRAL_STEPS = {
    "central_lr": Param(1e-4, 3e-2, log=True),
    "negatives": Param(choices=(4, 8, 16)),
    "loss": Param(choices=("bce", "bpr", "softmax")),
    "lr_schedule": Param(choices=("constant", "cosine")),
}


def search_space(method: MethodSpec, time_ordered: bool) -> dict[str, Param]:
    """The settings `mmfedrec tune` searches for `method` (empty: nothing to tune)."""
    if method.kind == "popularity":
        return {}
    space = dict(CENTRAL_STEPS if method.kind == "central" else CLIENT_STEPS)
    if method.model == "moe" and time_ordered:
        space["history"] = Param(choices=(0, AUTO_HISTORY))
    if method.modalities and method.kind == "federated":
        space["id_shrink"] = Param(0.005, 0.2, log=True)
    return space


PSEUDO_ITEMS = {
    "n_pseudo": Param(choices=(3, 5, 10, 20)),
    "pseudo_weight": Param(0.1, 1.0, log=True),
    "pseudo_trains": Param(choices=("own", "all")),
}
DIFFUSION = {
    "denoiser_rounds": Param(choices=(100, 300, 600)),
    "diffusion_steps": Param(choices=(1, 5, 20)),
    "diffusion_strength": Param(0.05, 1.0, log=True),
}


def augmentation_space(augmenter: str, reads_history: bool) -> dict[str, Param]:
    """The augmentation settings `mmfedrec tune --target augmentation` searches for `augmenter`
    (a history-aware model may also read pseudo-items as history)."""
    space = dict(PSEUDO_ITEMS)
    if reads_history:
        space["pseudo_as"] = Param(choices=("positives", "history", "both"))
    if augmenter == "diffusion":
        space |= DIFFUSION
    return space
