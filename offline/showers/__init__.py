"""Calorimeter shower validation: observables, metrics, report and the CLI.

Contract: everything here works on dense shower arrays ``(N, layers, x, y)`` of cell
energies in MeV with incident energies ``(N,)`` in GeV. Observables (numba, with a numpy
twin) live in :mod:`offline.showers.observables`; distribution metrics (JSD and S_JSD,
correlations, classifier test, FPD/KPD) in their own modules; generators to validate are
looked up by name in :mod:`offline.showers.registry`; ``python -m offline.showers`` writes
a report directory. Nothing heavy is imported here.

Choices worth knowing (details in each module):

* S_JSD with a single compared model reduces to the plain mean of the per-observable
  Jensen-Shannon distances (:mod:`offline.showers.jsd`).
* FPD and KPD are implemented here (:mod:`offline.showers.physics_distances`), following
  arXiv:2211.10295 and ``jetnet.evaluation``; ``jetnet`` is not a dependency because its
  installation would downgrade numpy and pull coffea and pandas.
* The classifier test follows the CaloChallenge evaluation: train/validation/test split,
  standardisation fitted on the training split, isotonic calibration on the validation
  split, AUC mean ± std over runs and ``JSD = (ln 2 - BCE) / ln 2``
  (:mod:`offline.showers.classifier`).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m offline.showers`` (see :mod:`offline.showers.cli`)."""
    from offline.showers.cli import main as cli_main

    return cli_main(argv)
