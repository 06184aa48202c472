"""The embedded default dataset: seeded, small, learnable, with a picture and a text per item.

Each item has a latent category (8) and style (pattern, size, colour noise). The image shows the
category as a shape (category mod 4) and a colour (the category's hue, a random one for 25% of
items); the text names the colour, pattern and size and, for 60% of items, a keyword of the
category. So the modalities are partly redundant (colour, pattern) and partly complementary
(shape only in the image, keywords only in the text). Users prefer a few categories (a Dirichlet
mix) and one pattern; their activity is long-tailed (many have <= 5 training events), and their
events are drawn from preference x item popularity, in increasing time with no drift.
`Catalog.labels` is the one-hot ground-truth category, for probes and coverage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mmfedrec.atomic import atomic_path, write_atomic
from mmfedrec.data.types import Dataset, make_catalog, make_interactions
from mmfedrec.errors import MmfedrecError

VERSION = 1  # bump when the generator changes, so cached images are redrawn
IMAGE_SIZE = 64
CATEGORIES = (
    ("sea", ("sailing", "beaches", "surfing")),
    ("forest", ("hiking", "camping", "woodland walks")),
    ("city", ("nightlife", "architecture", "street food")),
    ("space", ("astronomy", "rockets", "planets")),
    ("kitchen", ("cooking", "baking", "spices")),
    ("music", ("concerts", "guitars", "jazz")),
    ("sport", ("football", "running", "tennis")),
    ("games", ("puzzles", "board games", "arcades")),
)
COLOURS = (  # one per category: (name, RGB)
    ("red", (200, 40, 40)),
    ("orange", (230, 130, 30)),
    ("yellow", (220, 200, 40)),
    ("green", (50, 160, 60)),
    ("teal", (30, 150, 150)),
    ("blue", (40, 70, 200)),
    ("purple", (130, 50, 170)),
    ("pink", (230, 110, 170)),
)
SHAPES = ("circle", "square", "triangle", "diamond")
PATTERNS = ("plain", "striped", "dotted", "checked")
SIZES = ("small", "large")
FILLER = ("A classic of its kind.", "Available in limited numbers.", "A gift idea for anyone.", "Made to last.")
COLOUR_NOISE = 0.25  # share of items whose colour is not their category's
KEYWORD_RATE = 0.6  # share of items whose text names a keyword of their category


def generate_synthetic(n_users: int = 600, n_items: int = 400, seed: int = 0, *, image_dir: Path) -> Dataset:
    """The synthetic dataset; item images are written to `image_dir` (reused when already drawn)."""
    if n_users < 1 or n_items < 1:
        raise MmfedrecError(f"the synthetic set needs at least 1 user and 1 item, got {n_users} and {n_items}")
    if seed < 0:
        raise MmfedrecError(f"the data seed must be a non-negative integer, got {seed}")
    items = _items(n_items, np.random.default_rng([seed, 0]))
    _draw_images(items, Path(image_dir), seed)
    users, frame = _users_and_events(items, n_users, np.random.default_rng([seed, 1]))
    category = items["category"].to_numpy()
    labels = np.eye(len(CATEGORIES), dtype=np.uint8)[category]
    image_paths = [str((Path(image_dir) / f"{i}.png").resolve()) for i in items["item_id"]]
    catalog = make_catalog(
        items["item_id"].to_numpy(),
        [f"Item {i}" for i in items["item_id"]],
        items["text"].tolist(),
        image_paths,
        tuple(name for name, _ in CATEGORIES),
        labels,
    )
    return Dataset("synthetic", catalog, make_interactions(frame), users=users)


def _items(n_items: int, rng: np.random.Generator) -> pd.DataFrame:
    category = rng.integers(0, len(CATEGORIES), n_items)
    noisy = rng.random(n_items) < COLOUR_NOISE
    colour = np.where(noisy, rng.integers(0, len(COLOURS), n_items), category)
    pattern = rng.integers(0, len(PATTERNS), n_items)
    size = rng.integers(0, len(SIZES), n_items)
    keyword = rng.random(n_items) < KEYWORD_RATE
    texts = []
    for i in range(n_items):
        sentence = f"A {SIZES[size[i]]} {COLOURS[colour[i]][0]} {PATTERNS[pattern[i]]} design."
        if keyword[i]:
            sentence += f" Loved by fans of {rng.choice(CATEGORIES[category[i]][1])}."
        else:
            sentence += f" {rng.choice(FILLER)}"
        texts.append(sentence)
    return pd.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1, dtype=np.int64),
            "category": category,
            "colour": colour,
            "pattern": pattern,
            "size": size,
            "popularity": rng.lognormal(0.0, 1.0, n_items),
            "text": texts,
        }
    )


def _users_and_events(items: pd.DataFrame, n_users: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user preferences and their events; a user's events are drawn without replacement."""
    n_categories = len(CATEGORIES)
    category = items["category"].to_numpy()
    per_category = np.bincount(category, minlength=n_categories).clip(min=1)
    base = items["popularity"].to_numpy() / per_category[category]  # (I,) popularity within its category
    rows, top, favourite = [], [], []
    for user in range(1, n_users + 1):
        liked = rng.choice(n_categories, size=1 + rng.binomial(2, 0.3), replace=False)
        preference = np.full(n_categories, 0.1 / n_categories)
        preference[liked] += 0.9 * rng.dirichlet(np.ones(len(liked)))
        pattern = rng.integers(0, len(PATTERNS))
        weights = base * preference[category] * np.where(items["pattern"].to_numpy() == pattern, 2.0, 1.0)
        n_events = min(3 + int(rng.lognormal(1.3, 0.9)), len(items) // 4)
        chosen = rng.choice(len(items), size=n_events, replace=False, p=weights / weights.sum())
        times = 1_600_000_000 + int(rng.integers(0, 10**7)) + np.cumsum(rng.integers(60, 86_400, n_events))
        rows.append(pd.DataFrame({"user_id": user, "item_id": chosen + 1, "timestamp": times, "rating": 1.0}))
        top.append(CATEGORIES[int(np.argmax(preference))][0])
        favourite.append(PATTERNS[pattern])
    users = pd.DataFrame(
        {"top_category": top, "favourite_pattern": favourite}, index=pd.Index(range(1, n_users + 1), name="user_id")
    )
    return users, pd.concat(rows, ignore_index=True)


def _draw_images(items: pd.DataFrame, image_dir: Path, seed: int) -> None:
    """One PNG per item, written atomically; skipped when a manifest says this exact set is there."""
    from PIL import Image

    manifest = image_dir / "manifest.json"
    config = {"version": VERSION, "seed": seed, "n_items": len(items)}
    names = [f"{i}.png" for i in items["item_id"]]
    drawn = manifest.exists() and json.loads(manifest.read_text()) == config
    if drawn and all((image_dir / name).exists() for name in names):
        return
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2])
    for name, item in zip(names, items.itertuples(), strict=True):
        pixels = _render(int(item.category) % len(SHAPES), int(item.colour), int(item.pattern), int(item.size), rng)
        with atomic_path(image_dir / name) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
    write_atomic(manifest, json.dumps(config))


def _render(shape: int, colour: int, pattern: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(64, 64, 3) uint8: a patterned, coloured shape on a light background, with pixel noise."""
    from PIL import Image, ImageDraw

    mask_image = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw = ImageDraw.Draw(mask_image)
    radius = (14 if size == 0 else 26) + int(rng.integers(-2, 3))
    cx, cy = (IMAGE_SIZE // 2 + int(rng.integers(-4, 5)) for _ in range(2))
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if SHAPES[shape] == "circle":
        draw.ellipse(box, fill=255)
    elif SHAPES[shape] == "square":
        draw.rectangle(box, fill=255)
    elif SHAPES[shape] == "triangle":
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=255)
    else:
        draw.polygon([(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)], fill=255)
    inside = np.asarray(mask_image) > 0  # (H, W)

    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    marks = {
        "plain": np.zeros_like(inside),
        "striped": ((xx + yy) // 4) % 2 == 0,
        "dotted": (xx % 8 - 4) ** 2 + (yy % 8 - 4) ** 2 < 5,
        "checked": (xx // 8 + yy // 8) % 2 == 0,
    }[PATTERNS[pattern]]
    rgb = np.asarray(COLOURS[colour][1], dtype=np.float64) + rng.normal(0, 12, 3)  # colour jitter per item
    pixels = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 235.0)  # (H, W, 3) background
    pixels[inside] = rgb
    pixels[inside & marks] = 0.45 * rgb + 0.55 * 255.0  # lighter pattern marks
    pixels += rng.normal(0, 8, pixels.shape)
    return pixels.clip(0, 255).astype(np.uint8)
