"""Feature matrices for the classifier test and the physics distances (FPD, KPD).

High-level features are the scalar observables plus the incident energy and, optionally,
the longitudinal profile. Energies (visible energy, hit count, incident energy, layer
energies) enter as logarithms, ``log1p(E / unit)``, so the networks and the Gaussian
assumptions of FPD see well-conditioned, roughly symmetric inputs. Standardisation is
*not* done here: it must be fitted on a training split only, which is the caller's job.

Cell-level features are ``log1p(E_cell / threshold)`` of every cell (below-threshold
cells are 0) plus the log incident energy.
"""

from __future__ import annotations

import numpy as np

from offline.showers.observables import ShowerObservables, validate_showers

__all__ = ["cell_features", "high_level_feature_names", "high_level_features"]

_LOG_SCALARS = {"visible_energy", "n_hits"}


def high_level_feature_names(n_layers: int, include_profile: bool = True) -> list[str]:
    """Column names of :func:`high_level_features`."""
    from offline.showers.observables import SCALAR_OBSERVABLES

    names = [f"log_{n}" if n in _LOG_SCALARS else n for n in SCALAR_OBSERVABLES]
    names.append("log_incident_energy")
    if include_profile:
        names.extend(f"log_layer_{k}" for k in range(n_layers))
    return names


def high_level_features(
    observables: ShowerObservables,
    incident_gev: np.ndarray,
    threshold_mev: float,
    include_profile: bool = True,
) -> np.ndarray:
    """``(N, d)`` float64 high-level feature matrix (see :func:`high_level_feature_names`).

    Args:
        observables: observables of the showers.
        incident_gev: ``(N,)`` incident energies.
        threshold_mev: readout threshold; layer energies are taken in its units.
        include_profile: append the log longitudinal profile.

    Raises:
        ValueError: when the incident energies do not match the number of showers.
    """
    inc = np.asarray(incident_gev, dtype=np.float64).reshape(-1)
    if inc.size != len(observables):
        msg = f"{inc.size} incident energies for {len(observables)} showers"
        raise ValueError(msg)
    unit = float(threshold_mev) if threshold_mev > 0 else 1.0
    columns = []
    for name, values in observables.scalars().items():
        if name == "visible_energy":
            columns.append(np.log1p(values / unit))
        elif name == "n_hits":
            columns.append(np.log1p(values))
        else:
            columns.append(values)
    columns.append(np.log(np.maximum(inc, 1e-6)))
    matrix = np.stack(columns, axis=1)
    if include_profile:
        matrix = np.concatenate([matrix, np.log1p(observables.longitudinal_profile / unit)], axis=1)
    return matrix


def cell_features(
    showers: np.ndarray, incident_gev: np.ndarray, threshold_mev: float
) -> np.ndarray:
    """``(N, cells + 1)`` float32 matrix: ``log1p(E / threshold)`` per hit cell, then log E_inc.

    Raises:
        ValueError: when the incident energies do not match the number of showers.
    """
    arr = validate_showers(showers)
    inc = np.asarray(incident_gev, dtype=np.float64).reshape(-1)
    if inc.size != arr.shape[0]:
        msg = f"{inc.size} incident energies for {arr.shape[0]} showers"
        raise ValueError(msg)
    unit = float(threshold_mev) if threshold_mev > 0 else 1.0
    flat = arr.reshape(arr.shape[0], -1)
    cells = np.where(flat >= threshold_mev, np.log1p(np.maximum(flat, 0) / unit), 0.0).astype(
        np.float32
    )
    return np.concatenate(
        [cells, np.log(np.maximum(inc, 1e-6)).astype(np.float32)[:, None]], axis=1
    )
