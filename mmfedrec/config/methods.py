"""Every method mmfedrec trains, by name: ours, its ablations, and the baselines.

All of them run through the same engine and the same evaluator; a method is only a choice of
client model, item content and what is federated.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmfedrec.errors import MmfedrecError


@dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str  # "popularity", "federated" or "central"
    model: str = "mf"  # client model: moe | mf | ncf | pfedrec
    modalities: tuple[str, ...] = ()  # item content the tower fuses: "text", "image"
    n_experts: int = 4
    personalized_gate: bool = True
    federate: bool = True  # False: local-only, nothing is aggregated
    personal_items: bool = False  # each client ranks with its own fine-tuned item vectors
    summary: str = ""


_OURS = {"kind": "federated", "model": "moe"}
METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec("popularity", "popularity", summary="most popular training items (no learning)"),
        MethodSpec("central-mf", "central", "mf", summary="centralised MF, all data on one server (upper bound)"),
        MethodSpec("central-ncf", "central", "ncf", summary="centralised NeuMF (upper bound)"),
        MethodSpec("central-ours", "central", "moe", ("text", "image"), summary="our model trained centrally"),
        MethodSpec("local", "federated", "mf", federate=False, summary="each client trains alone"),
        MethodSpec("fedavg-mf", "federated", "mf", summary="FedMF: private users, averaged item vectors"),
        MethodSpec("fedncf", "federated", "ncf", summary="FedNCF: NeuMF with a private user vector"),
        MethodSpec("pfedrec", "federated", "pfedrec", summary="PFedRec-style private score function"),
        MethodSpec(
            "pfedrec-dual",
            "federated",
            "pfedrec",
            personal_items=True,
            summary="PFedRec: private score function and the client's own fine-tuned item vectors",
        ),
        MethodSpec("ours", **_OURS, modalities=("text", "image"), summary="federated MoE over fused text+image items"),
        MethodSpec("ours-no-image", **_OURS, modalities=("text",), summary="ablation: text only"),
        MethodSpec("ours-no-text", **_OURS, modalities=("image",), summary="ablation: image only"),
        MethodSpec("ours-id-only", **_OURS, summary="ablation: no item content"),
        MethodSpec("ours-no-moe", **_OURS, modalities=("text", "image"), n_experts=1, summary="ablation: one expert"),
        MethodSpec(
            "ours-shared-gate",
            **_OURS,
            modalities=("text", "image"),
            personalized_gate=False,
            summary="ablation: gate aggregated, not personalised",
        ),
    )
}


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise MmfedrecError(f"unknown method {name!r}; expected one of: {', '.join(METHODS)}")
    return METHODS[name]
