"""What every figure shares: the palette and markers of categories (cameras, identities), and saving atomically,
PNG, tight bounding box."""

from __future__ import annotations

import os
from pathlib import Path

# Okabe and Ito's colour-blind-safe qualitative palette (Color Universal Design): eight hues that stay apart under the
# common colour-vision deficiencies. Yellow, the faintest on white, comes last so that fewer groups never need it.
CATEGORY_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442")
# One marker per colour: two groups differ in shape as well as hue, which still tells them apart in greyscale.
CATEGORY_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def category_colours(n: int) -> list:
    """One colour per category, none repeated: Okabe-Ito's for up to 8; beyond, n evenly spaced hues (distinct
    but no longer safe for colour-blind readers, which is why a UMAP panel never colours more than 8 groups)."""
    if n <= len(CATEGORY_COLOURS):
        return list(CATEGORY_COLOURS[:n])
    import seaborn as sns  # here, not at the top: seaborn (with scipy.stats) costs every kernel half a second

    return sns.color_palette("husl", n)


def save_figure(fig, path: str | os.PathLike | None, dpi: int = 120) -> Path | None:
    """Write `fig` to `path` through a temporary file so an interrupted save never leaves a broken PNG."""
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    os.replace(tmp, path)
    return path
