"""Each client's own fine-tuned item vectors (PFedRec's dual personalisation, Zhang et al. 2023).

In PFedRec a client keeps the item embeddings it fine-tuned in its last round and ranks with
them; the server only sees the uploaded updates. Here those vectors are kept sparsely, one per
(client, item) the client trained on, and overlaid on the global table when scoring for that
client. They are private state: never uploaded, never aggregated.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmfedrec.federation.local.training import LocalResult, sum_by_key


class PersonalItemRows:
    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.keys = torch.zeros(0, dtype=torch.long)  # (R,) client * n_items + item
        self.values = torch.zeros(0, 0)  # (R, D + 1) the client's fine-tuned vector

    def update(self, clients: Tensor, result: LocalResult, start_table: Tensor) -> None:
        """Replace the rows of `clients` (C,) by what they fine-tuned this round from `start_table`."""
        keys, deltas = sum_by_key(result.row_keys(clients, self.n_items), result.row_delta[result.row_mask])
        if self.values.shape[1] != start_table.shape[1]:  # first update: the width is known now
            self.values = start_table.new_zeros(0, start_table.shape[1])
        keep = ~torch.isin(self.keys // self.n_items, clients)
        self.keys = torch.cat([self.keys[keep], keys])
        self.values = torch.cat([self.values[keep], start_table[keys % self.n_items] + deltas])

    def tables(self, users: Tensor, table: Tensor) -> Tensor:
        """(B, I, D + 1) the global `table` with each user's own rows laid over it."""
        rows = table.unsqueeze(0).repeat(len(users), 1, 1)
        position = torch.full((int(users.max()) + 1,), -1, dtype=torch.long)
        position[users] = torch.arange(len(users))
        mine = torch.isin(self.keys // self.n_items, users)
        keys = self.keys[mine]
        rows[position[keys // self.n_items], keys % self.n_items] = self.values[mine]
        return rows

    def state(self) -> dict[str, Tensor]:
        return {"personal.keys": self.keys.clone(), "personal.values": self.values.clone()}

    def load_state(self, tensors: dict[str, Tensor]) -> None:
        self.keys, self.values = tensors["personal.keys"].clone(), tensors["personal.values"].clone()
