"""Client models, one per file, all written over a leading client dimension.

Every tensor a client owns has shape (C, ...): C clients train side by side in one set of
tensor operations, and since no client's loss touches another's parameters, autograd on the
sum of their losses yields each client's own gradient. The reference loop runs the very same
code with C = 1. Shared tensors may be given with a leading 1 to broadcast (evaluation).

A model exposes:
- `init_shared(generator) -> dict`: the server's dense shared tensors (no client dim);
- `init_private(n_clients, generator) -> dict`: state that never leaves a client, (C, ...);
- `scores(private, shared, rows, context=None) -> (C, L)`: logits for the item vectors `rows`
  (C|1, L, D+1), whose last column is the item bias;
- `auxiliary_loss(private, shared) -> (C,)` and `routed_mass(private, shared) -> (C, K) | None`;
- `history`: how many recent items condition the user state (`mmfedrec.federation.local.history`);
  when > 0, `scores` gets each client's history `context` (C, D) (None otherwise), and
  `client_vector` takes one per client or per example, (C, D) or (C, B, D).
"""

from mmfedrec.federation.models.registry import MODEL_NAMES, build_model, initial_state

__all__ = ["MODEL_NAMES", "build_model", "initial_state"]
