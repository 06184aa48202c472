"""A control for the cold-start figures: `mmfedrec` with every item's content permuted across items.

    python benchmarks/shuffled_content.py --threads 1 train --method ours --cold-items 0.1 ...

Runs the `mmfedrec` command line unchanged, except that each item reads another item's text and
image features (one seeded permutation). Content then says nothing about the item, so what a
content model still achieves on cold items is what it gets for an item being unheld (its row is
content-only, not pushed down by negatives), not for what the item is. The gap between this and
the real run is what content is worth on cold items.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from mmfedrec.cli import main
from mmfedrec.federation.models import content

PERMUTATION_SEED = 12345
_build = content.ItemContent.__init__


def _with_permuted_content(self: content.ItemContent, *args: object, **kwargs: object) -> None:
    _build(self, *args, **kwargs)
    order = torch.from_numpy(np.random.default_rng(PERMUTATION_SEED).permutation(len(self.mask)))
    for name in ("text", "image", "mask"):
        features = getattr(self, name)
        if features is not None:
            setattr(self, name, features[order].clone())


if __name__ == "__main__":
    content.ItemContent.__init__ = _with_permuted_content
    sys.exit(main(sys.argv[1:]))
