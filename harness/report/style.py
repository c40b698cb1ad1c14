"""One look for every figure: a colour per backend, a line style per variant, saved as asked.

The palette is fixed by backend name (not by the order backends appear in a run), so ``torch``
is the same colour in every plot of every report; an unknown backend (a plugin) gets a colour
from a checksum of its name, stable from run to run. Figures are saved in each of the chosen
formats (``--plot-format``, default PNG and SVG) beside each other.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BACKEND_COLOURS = {  # colour-blind-safe (Okabe-Ito) colours
    "torch": "#D55E00",  # vermillion
    "keras": "#0072B2",  # blue
    "keras-jax": "#56B4E9",  # sky blue
    "keras-torch": "#CC79A7",  # reddish purple
    "jax": "#009E73",  # bluish green
    "numpy": "#E69F00",  # orange
}
FALLBACK_COLOURS = ("#F0E442", "#000000", "#999999", "#882255", "#44AA99", "#117733")
VARIANT_STYLES = {
    "bn": "-",
    "no-bn": "--",
    "layernorm": ":",
    "bn-after": "-.",
}
FALLBACK_STYLES = ((0, (5, 1, 1, 1)), (0, (1, 3)), (0, (8, 3)), (0, (3, 1, 1, 1, 1, 1)))
PLOT_FORMATS = ("png", "svg", "pdf")
DEFAULT_PLOT_FORMATS = ("png", "svg")


def _pick(name: str, choices: tuple[Any, ...]) -> Any:
    return choices[zlib.crc32(name.encode()) % len(choices)]


def backend_colour(backend: str) -> str:
    """The colour of ``backend`` (``torch`` or ``torch/gpu``: the device does not change it)."""
    name = backend.split("/")[0]
    return BACKEND_COLOURS.get(name) or str(_pick(name, FALLBACK_COLOURS))


def variant_style(variant: str) -> Any:
    """The matplotlib line style of ``variant`` (solid for BN, dashed for no BN, ...)."""
    return VARIANT_STYLES.get(variant) or _pick(variant, FALLBACK_STYLES)


def device_marker(device: str) -> str:
    """Marker by device: circles on CPU, triangles on GPU."""
    return "^" if device == "gpu" else "o"


def parse_formats(text: str) -> tuple[str, ...]:
    """``png,svg`` -> ``("png", "svg")``; an unknown format is a one-line error naming them."""
    from harness.errors import UnknownNameError

    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    for fmt in chosen or (text,):
        if fmt not in PLOT_FORMATS:
            raise UnknownNameError("plot format", fmt, PLOT_FORMATS)
    return chosen


def save(fig: Any, path: Path, formats: Iterable[str], dpi: int = 110) -> str:
    """Save ``fig`` as ``path`` in each format; return the file name a markdown image links.

    The link is the PNG when one is written, else the SVG, else the first format.
    """
    written = [path.with_suffix(f".{fmt}") for fmt in formats]
    import matplotlib

    for target in written:
        # SVG/PDF without the creation date, and SVG element ids from a fixed salt (matplotlib
        # draws them at random otherwise), so a rebuilt figure is byte-identical
        metadata = {"Date": None} if target.suffix in (".svg", ".pdf") else None
        with matplotlib.rc_context({"svg.hashsalt": "bn-harness"}):
            fig.savefig(target, dpi=dpi, metadata=metadata)
    names = [p.name for p in written]
    for preferred in (".png", ".svg"):
        if path.with_suffix(preferred).name in names:
            return path.with_suffix(preferred).name
    return names[0] if names else path.name
