"""Calorimeter shower validation: observables, metrics, report and the CLI.

Contract: everything here works on dense shower arrays ``(N, layers, x, y)`` of cell
energies in MeV with incident energies ``(N,)`` in GeV. Observables (numba, with a numpy
twin) live in :mod:`offline.showers.observables`; distribution metrics (JSD and S_JSD,
correlations, classifier test, FPD/KPD) in their own modules; generators to validate are
looked up by name in :mod:`offline.showers.registry`; ``python -m offline.showers`` writes
a report directory. Nothing heavy is imported here.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m offline.showers`` (see :mod:`offline.showers.cli`)."""
    from offline.showers.cli import main as cli_main

    return cli_main(argv)
