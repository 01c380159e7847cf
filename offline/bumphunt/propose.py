"""Close the loop of arXiv 2202.09375, Fig. 9.1: an excess found offline becomes a trigger path.

:func:`propose_trigger_path` turns a bump-hunt window into an HLT path (the mass window
as two cuts, prescale 1, a name that says where it came from) and
:func:`write_trigger_toml` writes it in the form the run configuration reads
(``[[trigger.hlt]]`` tables, see :mod:`emulator.trigger`), so that appending the file to a
run configuration adds the path to the next run's menu::

    python -m offline.bumphunt snapshot/ --propose-trigger window.toml
    cat configs/bumphunt-quick.toml window.toml > next.toml
    python -m emulator run --config next.toml --out next/

The next run then stores every event in the window, whatever the prescale of the other
paths. :func:`window_significance` measures the data significance in a fixed window
from stored events whose rate differs inside and outside it: the background is fitted
to the side-bands (the bins outside the window) and scaled by the ratio of the stored
rates, ``sideband_scale`` (the other path's prescale).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offline.bumphunt.errors import BumpHuntError
from offline.bumphunt.fit import fit_background
from offline.bumphunt.histogram import MassBinning, histogram_members

__all__ = [
    "WindowSignificance",
    "propose_trigger_path",
    "trigger_toml",
    "window_significance",
    "write_trigger_toml",
]


def _number(value: float) -> str:
    """``0.8`` → ``"0p8"`` for path names."""
    text = f"{value:.4g}".replace("-", "m").replace(".", "p")
    return re.sub(r"[^A-Za-z0-9]", "", text)


def propose_trigger_path(
    window: Sequence[float],
    *,
    column: str = "mass",
    origin: str = "",
    significance: float | None = None,
) -> dict[str, Any]:
    """A trigger path that accepts ``low <= column < high`` at prescale 1.

    Args:
        window: ``(low, high)`` of the excess (the histogram's half-open bins).
        column: the event column the window is in.
        origin: where the window came from (a snapshot directory), for the name.
        significance: its significance, for the comment.

    Returns:
        ``{"name", "cuts", "prescale", "comment"}``; the first three are the keys of
        :meth:`emulator.trigger.TriggerPath.from_mapping`.

    Example:
        >>> p = propose_trigger_path((0.8, 1.2), origin="runs/snapshot")
        >>> p["name"], p["cuts"], p["prescale"]
        ('HLT_bumphunt_snapshot_mass_0p8_1p2', ['mass >= 0.8', 'mass < 1.2'], 1)
    """
    low, high = (float(v) for v in window)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        msg = f"propose trigger: window must be two finite numbers low < high, got {tuple(window)!r}"
        raise BumpHuntError(msg)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", Path(origin).name if origin else "").strip("_")
    parts = ["HLT_bumphunt", stem, column, _number(low), _number(high)]
    name = "_".join(p for p in parts if p)
    comment = f"mass window [{low:g}, {high:g}) found by offline.bumphunt"
    if origin:
        comment += f" in {origin}"
    if significance is not None and math.isfinite(significance):
        comment += f" (significance {significance:.2f})"
    return {
        "name": name,
        "cuts": [f"{column} >= {low!r}", f"{column} < {high!r}"],
        "prescale": 1,
        "comment": comment,
    }


def trigger_toml(paths: Sequence[Mapping[str, Any]]) -> str:
    """TOML text with one ``[[trigger.hlt]]`` table per path (comments kept as comments)."""
    lines = [
        "# Trigger path(s) proposed by python -m offline.bumphunt --propose-trigger.",
        "# Append to a run configuration that has a [trigger] table:",
        "#   cat run.toml this.toml > next.toml",
    ]
    for path in paths:
        lines.append("")
        if path.get("comment"):
            lines.append(f"# {path['comment']}")
        lines.append("[[trigger.hlt]]")
        lines.append(f"name = {_toml_string(str(path['name']))}")
        lines.append("cuts = [" + ", ".join(_toml_string(str(c)) for c in path["cuts"]) + "]")
        lines.append(f"prescale = {int(path['prescale'])}")
    return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_trigger_toml(path: str | Path, paths: Sequence[Mapping[str, Any]]) -> Path:
    """Write :func:`trigger_toml` to ``path`` (parents created) and return it.

    Raises:
        BumpHuntError: the path is a directory or cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        msg = f"--propose-trigger {str(path)!r} is a directory; give a file name like window.toml"
        raise BumpHuntError(msg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(trigger_toml(paths))
    except OSError as err:
        msg = f"cannot write the proposed trigger to {str(path)!r}: {err}"
        raise BumpHuntError(msg) from err
    return path


@dataclass(frozen=True)
class WindowSignificance:
    """Significance of the data in a fixed window (see :func:`window_significance`).

    Attributes:
        observed: O, stored events in the window.
        background: B, side-band fit in the window times ``sideband_scale``.
        significance: (O − B)/√B.
        fit_valid: whether the side-band fit is valid.
    """

    observed: float
    background: float
    significance: float
    fit_valid: bool


def window_significance(
    masses: np.ndarray,
    window: Sequence[float],
    binning: MassBinning | None = None,
    *,
    sideband_scale: float = 1.0,
    fit_order: int = 5,
) -> WindowSignificance:
    """S/√B of stored events in a fixed window, background from the side-bands.

    Args:
        masses: stored event masses.
        window: ``(low, high)``, on bin edges of ``binning``.
        binning: mass bins (default: the paper's).
        sideband_scale: stored rate inside the window over the rate outside (the
            prescale of the path that stores the side-bands when the window path has
            prescale 1; 1 when one prescale applies everywhere).
        fit_order: order of the background exponent.

    Raises:
        BumpHuntError: the window is not on bin edges, or the side-bands cannot be fitted.
    """
    binning = binning or MassBinning()
    edges = binning.edges
    low_bin = int(np.argmin(np.abs(edges - window[0])))
    high_bin = int(np.argmin(np.abs(edges - window[1])))
    if not (
        math.isclose(edges[low_bin], window[0], abs_tol=1e-9)
        and math.isclose(edges[high_bin], window[1], abs_tol=1e-9)
        and high_bin > low_bin
    ):
        msg = f"window {tuple(window)!r} is not on the bin edges of {binning}"
        raise BumpHuntError(msg)
    counts = histogram_members(np.asarray(masses, dtype=np.float64)[None, :], binning)[0]
    sidebands = np.ones(counts.size, dtype=bool)
    sidebands[low_bin:high_bin] = False
    try:
        fit = fit_background(counts, edges, fit_order, mask=sidebands)
    except ValueError as err:
        msg = f"window significance: the side-bands of {tuple(window)!r} cannot be fitted: {err}"
        raise BumpHuntError(msg) from err
    o = float(counts[low_bin:high_bin].sum())
    b = fit.window_count(low_bin, high_bin) * float(sideband_scale)
    sig = (o - b) / math.sqrt(b) if b > 0 else float("nan")
    return WindowSignificance(o, b, sig, fit.valid)
