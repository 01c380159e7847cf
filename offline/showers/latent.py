"""Latent-space study of a trained BIB-AE (arXiv 2102.12491): which latents are used, and for what.

``python -m offline.showers.latent --snapshot DIR --n N --out OUT`` encodes ``N`` held-out
reference showers with the snapshot's encoder (:meth:`models.bibae.BIBAE.encode`) and
writes into ``OUT``:

* ``latent.json``: per latent its KLD to N(0, 1) (:func:`models.bibae.losses.kld_per_latent`,
  the mean over showers of ``KL(N(mu, sigma²) || N(0, 1))`` in nats) with the standard
  error of that mean, the mean and spread of ``mu`` and the mean ``sigma``; the latents in
  decreasing order of KLD; and for the ``top`` latents of highest KLD the Pearson and
  Spearman correlations of their mean ``mu`` with the showers' observables, each with a
  bootstrap error (:mod:`offline.showers.cross_correlations`: the standard deviation over
  ``bootstrap`` replicas of the showers drawn with replacement);
* ``latent_kld.png``, ``latent_correlations.png``, ``latent_vs_observables.png``
  (:mod:`offline.showers.latent_plots`).

The observables are those of the validation report (:mod:`offline.showers.observables`,
hits at or above the geometry's threshold): centre of gravity in z (layer), x and y
(cells from the grid centre), visible energy (MeV) and number of hits; besides them the
incident energy (GeV) and the response, visible over incident energy (MeV/GeV). The
incident energy is a condition of encoder and decoder, so a latent need not carry the
energy itself, only its fluctuation at a given energy. A latent that collapsed onto the
prior has KLD ≈ 0 and carries no information about the shower; the latents of high KLD
are the ones the decoder reads.

Reference showers come from the same source as ``python -m offline.showers --model bibae``
(:mod:`offline.showers.pipeline`): by default the reference simulator, on the model's
window (the ``small`` preset: the central 10 × 10 cells of all 30 layers, which the
simulator reproduces cell for cell); with ``--reference FILE`` the file's first ``N``
showers, cropped to the same central window. The default seed is *held out*: a snapshot
trained on the simulator stream with seed ``s`` (its manifest's ``data_identity``) is
studied on seed ``s + 1``, because seed ``s`` would repeat the first training showers
event for event (a seed equal to the training seed is allowed but flagged).

Example:
    python -m offline.showers.latent --snapshot ~/runs/bibae-small --n 5000 --out latent/
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from offline.showers.cross_correlations import CrossCorrelation, cross_correlations
from offline.showers.snapshot_model import held_out_seed

__all__ = [
    "OBSERVABLES",
    "SHORT_NAMES",
    "UNITS",
    "LatentConfig",
    "LatentEncoder",
    "LatentStudy",
    "build_parser",
    "format_table",
    "held_out_seed",
    "latent_study",
    "main",
    "run_latent_study",
]

_SHOWER_OBSERVABLES = ("cog_z", "cog_x", "cog_y", "visible_energy", "n_hits")
OBSERVABLES: tuple[str, ...] = (*_SHOWER_OBSERVABLES, "incident_energy", "visible_per_incident")
"""Per-shower quantities the top latents are correlated with: five of :data:`SCALAR_OBSERVABLES`,
the incident energy and the response ``visible_energy / incident_energy``."""

UNITS: dict[str, str] = {
    "cog_z": "layer",
    "cog_x": "cells",
    "cog_y": "cells",
    "visible_energy": "MeV",
    "n_hits": "hits",
    "incident_energy": "GeV",
    "visible_per_incident": "MeV/GeV",
}
"""Unit of every name in :data:`OBSERVABLES`."""

SHORT_NAMES: dict[str, str] = {
    "cog_z": "CoG-z",
    "cog_x": "CoG-x",
    "cog_y": "CoG-y",
    "visible_energy": "E_vis",
    "n_hits": "hits",
    "incident_energy": "E_inc",
    "visible_per_incident": "E_vis/E_inc",
}
"""Column headings of the terminal table."""

_KLD_METHOD = (
    "mean over showers of KL(N(mu, exp(logvar)) || N(0, 1)) per latent "
    "(models.bibae.losses.kld_per_latent), nats; "
    "error: standard deviation of the per-shower KLD / sqrt(n)"
)
_CORRELATION_METHOD = (
    "Pearson and Spearman (average ranks for ties) correlation of the latent mean mu "
    "with each observable; error: standard deviation over bootstrap replicas of the "
    "showers (drawn with replacement, seeded)"
)


class LatentEncoder(Protocol):
    """What the study needs of a model: latent means and log-variances of dense showers."""

    def encode(
        self, showers: Any, incident_energy: Any, *, batch_size: int = 512
    ) -> tuple[Any, Any]:
        """``(mu, logvar)``, each ``(n, latent_dims)``, of showers (MeV) at energies (GeV)."""
        ...


def _latent_name(index: int) -> str:
    return f"z{index}"


@dataclass(frozen=True)
class LatentStudy:
    """Per-latent KLD and the correlations of the top latents with the observables.

    Attributes:
        kld: ``(D,)`` KLD of every latent to N(0, 1), nats (mean over showers).
        kld_error: ``(D,)`` standard error of that mean.
        mu_mean: ``(D,)`` mean over showers of the latent mean.
        mu_std: ``(D,)`` standard deviation over showers of the latent mean.
        sigma_mean: ``(D,)`` mean over showers of the latent standard deviation.
        order: ``(D,)`` latent indices in decreasing order of KLD.
        top: the indices of the latents that are correlated (the first of :attr:`order`).
        correlations: rows ``z<index>`` of :attr:`top`, columns :data:`OBSERVABLES`.
        mu: ``(n, D)`` latent means (for the plots; not written to JSON).
        observables: name -> ``(n,)`` values of :data:`OBSERVABLES`.
    """

    kld: np.ndarray
    kld_error: np.ndarray
    mu_mean: np.ndarray
    mu_std: np.ndarray
    sigma_mean: np.ndarray
    order: np.ndarray
    top: list[int]
    correlations: CrossCorrelation
    mu: np.ndarray = field(repr=False)
    observables: dict[str, np.ndarray] = field(repr=False)

    @property
    def n(self) -> int:
        """Number of encoded showers."""
        return int(self.mu.shape[0])

    @property
    def latent_dims(self) -> int:
        """Number of latents."""
        return int(self.kld.shape[0])

    def to_json(self) -> dict[str, Any]:
        """KLD per latent, the sorted order, the top latents and their correlations (JSON types)."""
        per_latent = [
            {
                "latent": i,
                "kld": float(self.kld[i]),
                "kld_error": float(self.kld_error[i]),
                "mu_mean": float(self.mu_mean[i]),
                "mu_std": float(self.mu_std[i]),
                "sigma_mean": float(self.sigma_mean[i]),
            }
            for i in range(self.latent_dims)
        ]
        return {
            "n_showers": self.n,
            "latent_dims": self.latent_dims,
            "kld": {
                "method": _KLD_METHOD,
                "total": float(self.kld.sum()),
                "per_latent": per_latent,
                "sorted": [int(i) for i in self.order],
            },
            "top": list(self.top),
            "correlations": {
                "method": _CORRELATION_METHOD,
                "observables": list(OBSERVABLES),
                "units": dict(UNITS),
                **self.correlations.to_json(),
            },
        }


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return int(value)


def latent_study(
    encoder: LatentEncoder,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    threshold_mev: float,
    *,
    top: int = 4,
    bootstrap: int = 200,
    seed: int = 0,
    batch_size: int = 512,
    total: int | None = None,
    progress: bool = False,
) -> LatentStudy:
    """Encode showers chunk by chunk, then the KLD per latent and the correlations of the top ones.

    Args:
        encoder: the model (:class:`LatentEncoder`; a BIB-AE).
        chunks: ``(energies (n,) GeV, showers (n, L, X, Y) MeV)`` on the grid the encoder
            takes (a BIB-AE window model: its window).
        threshold_mev: hit threshold of the observables.
        top: number of highest-KLD latents to correlate.
        bootstrap: replicas for the correlation errors.
        seed: seed of the bootstrap replicas.
        batch_size: showers per encoder pass.
        total: number of showers, for the progress bar.
        progress: show a progress bar of the encoding (stderr).

    Returns:
        The study.

    Raises:
        ValueError: no showers, fewer than 3, ``top`` not in ``1..latent_dims``, malformed
            showers (named by the encoder or :func:`compute_observables`).
    """
    import torch
    from tqdm.auto import tqdm

    from models.bibae.losses import kld_per_latent
    from offline.showers.observables import compute_observables

    _check_int("top", top, 1)
    mus: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []
    columns: dict[str, list[np.ndarray]] = {
        name: [] for name in (*_SHOWER_OBSERVABLES, "incident_energy")
    }
    with tqdm(
        total=total, desc="encode reference showers", unit="shower", disable=not progress
    ) as bar:
        for energies, showers in chunks:
            energies = np.asarray(energies, dtype=np.float64).reshape(-1)
            showers = np.asarray(showers)
            if showers.shape[0] != energies.shape[0]:
                msg = (
                    f"a chunk holds {showers.shape[0]} showers "
                    f"but {energies.shape[0]} incident energies"
                )
                raise ValueError(msg)
            mu, logvar = encoder.encode(
                torch.from_numpy(np.ascontiguousarray(showers, dtype=np.float32)),
                torch.from_numpy(energies.astype(np.float32)),
                batch_size=batch_size,
            )
            mus.append(mu.detach().cpu())
            logvars.append(logvar.detach().cpu())
            scalars = compute_observables(showers, threshold_mev).scalars()
            for name in _SHOWER_OBSERVABLES:
                columns[name].append(scalars[name])
            columns["incident_energy"].append(energies)
            bar.update(energies.shape[0])
    if not mus:
        msg = "no showers to encode (the reference is empty)"
        raise ValueError(msg)
    mu_t, logvar_t = torch.cat(mus), torch.cat(logvars)
    n, dims = mu_t.shape
    if not 1 <= top <= dims:
        msg = f"top must be between 1 and the model's {dims} latents, got {top}"
        raise ValueError(msg)
    kld = kld_per_latent(mu_t, logvar_t).double().numpy()
    mu = mu_t.double().numpy()
    logvar = logvar_t.double().numpy()
    per_shower = 0.5 * (mu * mu + np.exp(logvar) - 1.0 - logvar)
    kld_error = per_shower.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(dims, np.nan)
    order = np.argsort(-kld, kind="stable")
    chosen = [int(i) for i in order[:top]]
    observables = {name: np.concatenate(parts) for name, parts in columns.items()}
    observables["visible_per_incident"] = (
        observables["visible_energy"] / observables["incident_energy"]
    )
    observables = {name: observables[name] for name in OBSERVABLES}
    correlations = cross_correlations(
        {_latent_name(i): mu[:, i] for i in chosen}, observables, bootstrap=bootstrap, seed=seed
    )
    return LatentStudy(
        kld=kld,
        kld_error=kld_error,
        mu_mean=mu.mean(axis=0),
        mu_std=mu.std(axis=0),
        sigma_mean=np.exp(0.5 * logvar).mean(axis=0),
        order=order,
        top=chosen,
        correlations=correlations,
        mu=mu,
        observables=observables,
    )


@dataclass(frozen=True)
class LatentConfig:
    """Settings of one latent study (the CLI's options).

    Attributes:
        snapshot: snapshot directory of a trained BIB-AE.
        n: reference showers to encode (at least 20).
        out_dir: output directory (created).
        reference: reference file (Zarr, ILD HDF5, CaloChallenge HDF5, ROOT), or None to
            simulate a held-out sample.
        format: reader format of ``reference``, or None to detect it.
        geometry: ``"ecal"`` or ``"ahcal"``; the model's window of it is used.
        seed: seed of the simulated reference, or None for :func:`held_out_seed`'s default.
        top: highest-KLD latents to correlate with the observables.
        bootstrap: replicas for the correlation errors (0: none).
        chunk_size: showers simulated, read and summarised at a time.
        batch_size: showers per encoder pass.
        device: where the encoder runs (``"cpu"``, ``"cuda"``).
        plots: write the PNG plots.
        progress: progress bar on stderr.
    """

    snapshot: Path
    n: int = 5000
    out_dir: Path = Path("bibae-latent")
    reference: Path | None = None
    format: str | None = None
    geometry: str = "ecal"
    seed: int | None = None
    top: int = 4
    bootstrap: int = 200
    chunk_size: int = 1000
    batch_size: int = 512
    device: str = "cpu"
    plots: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 20:
            msg = f"n must be an integer of at least 20 showers, got {self.n!r}"
            raise ValueError(msg)
        _check_int("top", self.top, 1)
        _check_int("chunk_size", self.chunk_size, 1)
        _check_int("batch_size", self.batch_size, 1)
        if self.seed is not None:
            _check_int("seed", self.seed, 0)
        if (
            isinstance(self.bootstrap, bool)
            or not isinstance(self.bootstrap, int)
            or self.bootstrap < 0
            or self.bootstrap == 1
        ):
            msg = (
                "bootstrap must be 0 (no errors) or an integer >= 2 (replicas), "
                f"got {self.bootstrap!r}"
            )
            raise ValueError(msg)


def run_latent_study(config: LatentConfig) -> tuple[LatentStudy, dict[str, Any]]:
    """Load the snapshot, encode the reference, write ``latent.json`` and the plots.

    Returns:
        The study and the record written to ``latent.json``.

    Raises:
        ValueError: no snapshot there, a corrupt one, one of another kind than BIB-AE (its
            kind named), ``top`` larger than the model's latents, a reference of another grid.
        FileNotFoundError: a missing reference file.
    """
    from emulator.snapshot import read_manifest
    from offline.showers.pipeline import _central, load_reference, simulate_reference
    from offline.showers.snapshot_model import SnapshotGenerator

    started = time.perf_counter()
    manifest = read_manifest(
        config.snapshot
    )  # SnapshotError (a ValueError) names a missing snapshot
    kind = manifest["model_kind"]
    if kind != "bibae":
        msg = (
            f"snapshot {str(config.snapshot)!r} holds a {kind!r} model; the latent study "
            "needs a BIB-AE ('bibae') snapshot, whose encoder defines the latents"
        )
        raise ValueError(msg)
    generator = SnapshotGenerator(
        config.geometry, config.snapshot, kind="bibae", device=config.device
    )
    model: Any = generator.model  # a BIBAE (kind checked): encode() and config.latent_dims
    dims = int(model.config.latent_dims)
    if config.top > dims:
        msg = f"--top {config.top} exceeds the model's {dims} latents"
        raise ValueError(msg)
    geometry = generator.reference_geometry()
    seed, trained_seed = held_out_seed(manifest, config.seed)
    training_overlap = False
    if config.reference is not None:
        file_geometry, chunks, count = load_reference(
            config.reference, config.n, config.format, config.chunk_size
        )
        if tuple(geometry.shape) != tuple(generator.geometry.shape):
            chunks = _central(chunks, tuple(geometry.shape))
        threshold = (
            float(file_geometry.threshold_mev)
            if file_geometry is not None
            else float(geometry.threshold_mev)
        )
        reference_label = str(config.reference)
    else:
        count = config.n
        chunks = simulate_reference(geometry, config.n, seed, config.chunk_size)
        threshold = float(geometry.threshold_mev)
        training_overlap = trained_seed is not None and seed == trained_seed
        reference_label = f"simulated held-out sample (seed {seed})"
        if training_overlap:
            reference_label = (
                f"simulated sample (seed {seed}, the training stream's seed: the training showers)"
            )
    encode_started = time.perf_counter()
    study = latent_study(
        model,
        chunks,
        threshold,
        top=config.top,
        bootstrap=config.bootstrap,
        seed=seed,
        batch_size=config.batch_size,
        total=count,
        progress=config.progress,
    )
    encoded = time.perf_counter() - encode_started
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    if config.plots:
        from offline.showers.latent_plots import plot_latent_study

        plots = plot_latent_study(study, out_dir)
    record: dict[str, Any] = {
        "snapshot": str(config.snapshot),
        "model": repr(model),
        "geometry": geometry.name,
        "grid": "×".join(str(s) for s in geometry.shape),
        "threshold_mev": threshold,
        "reference": reference_label,
        "seed": seed if config.reference is None else None,
        "training_seed": trained_seed,
        "reference_is_training_data": training_overlap,
        **study.to_json(),
        "plots": plots,
        "time_s": {"reference_and_encoding": encoded, "total": time.perf_counter() - started},
    }
    (out_dir / "latent.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return study, record


def _signed(value: float | None, error: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}" + (f"±{error:.3f}" if error is not None else "")


def format_table(study: LatentStudy, record: Mapping[str, Any]) -> str:
    """The terminal summary: sorted KLDs, Pearson and Spearman of the top latents (± bootstrap)."""
    lines = [
        f"BIB-AE latent study: {study.n} showers, {record.get('reference', '')}, "
        f"grid {record.get('grid', '')}",
        f"KLD per latent [nats], sorted (total {study.kld.sum():.3f}):",
    ]
    ranked = [f"z{int(i)} {study.kld[int(i)]:.3f}" for i in study.order]
    for start in range(0, len(ranked), 8):
        lines.append("  " + ", ".join(ranked[start : start + 8]))
    header = f"{'latent':<8}{'KLD [nats]':>14}  " + "".join(
        f"{SHORT_NAMES[name]:>15}" for name in OBSERVABLES
    )
    for kind in ("pearson", "spearman"):
        lines += [
            "",
            f"{kind.capitalize()} correlation of the latent mean with (± bootstrap error):",
            header,
        ]
        for index in study.top:
            cells = []
            for name in OBSERVABLES:
                entry = study.correlations.entry(_latent_name(index), name)
                cells.append(f"{_signed(entry[kind], entry[f'{kind}_error']):>15}")
            kld = f"{study.kld[index]:.3f}±{study.kld_error[index]:.3f}"
            lines.append(f"{_latent_name(index):<8}{kld:>14}  " + "".join(cells))
    units = ", ".join(f"{SHORT_NAMES[name]} = {name} [{unit}]" for name, unit in UNITS.items())
    lines += ["", f"observables: {units}"]
    return "\n".join(lines)


_EXAMPLES = """\
examples:
  # the latent space of the small-preset BIB-AE on 5000 held-out simulated showers
  python -m offline.showers.latent --snapshot ~/runs/bibae-small --n 5000 --out latent/

  # the 6 highest-KLD latents on showers of a file (cropped to the model's window), JSON line
  python -m offline.showers.latent --snapshot ~/runs/bibae-small --reference photons.h5 \
      --top 6 --json --out latent/

OUT holds latent.json (KLD per latent, sorted order, correlations with errors), latent_kld.png,
latent_correlations.png and latent_vs_observables.png.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m offline.showers.latent``."""
    parser = argparse.ArgumentParser(
        prog="python -m offline.showers.latent",
        description=(
            "Latent-space study of a trained BIB-AE (arXiv 2102.12491): the KLD of every "
            "latent to N(0, 1) over held-out reference showers, and the Pearson/Spearman "
            "correlations of the highest-KLD latents with the centre of gravity (z, x, y), "
            "visible energy, number of hits, incident energy and their ratio."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--snapshot", type=Path, required=True, help="snapshot directory of a trained BIB-AE"
    )
    parser.add_argument(
        "--n", type=int, default=5000, help="reference showers to encode (default: 5000)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bibae-latent"),
        help="output directory (default: bibae-latent)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference showers (Zarr, ILD HDF5, CaloChallenge HDF5, ROOT hit tree); "
        "default: simulate a held-out sample",
    )
    parser.add_argument(
        "--format", default=None, help="force the reader format of --reference (default: detect)"
    )
    parser.add_argument(
        "--geometry",
        default="ecal",
        choices=("ecal", "ahcal"),
        help="calorimeter geometry (default: ecal)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the simulated reference "
        "(default: the snapshot's training seed + 1, i.e. held out)",
    )
    parser.add_argument(
        "--top", type=int, default=4, help="highest-KLD latents to correlate (default: 4)"
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        help="bootstrap replicas for the correlation errors (default: 200)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=512, help="showers per encoder pass (default: 512)"
    )
    parser.add_argument(
        "--device", default="cpu", help="where the encoder runs: cpu or cuda (default: cpu)"
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="skip the PNG plots (latent.json only)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line instead of the table"
    )
    return parser


def _headline(study: LatentStudy, record: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    top = []
    for index in study.top:
        row: dict[str, Any] = {
            "latent": index,
            "kld": float(study.kld[index]),
            "kld_error": float(study.kld_error[index]),
        }
        for kind in ("pearson", "spearman"):
            row[kind] = {}
            for name in OBSERVABLES:
                entry = study.correlations.entry(_latent_name(index), name)
                row[kind][name] = [entry[kind], entry[f"{kind}_error"]]
        top.append(row)
    return {
        "n_showers": study.n,
        "reference": record["reference"],
        "kld_sorted": [int(i) for i in study.order],
        "kld_total": float(study.kld.sum()),
        "top": top,
        "time_s": record["time_s"]["total"],
        "json": str(out_dir / "latent.json"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the latent study; print the table (``--json``: one line). Exit 0, or 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        config = LatentConfig(
            snapshot=args.snapshot,
            n=args.n,
            out_dir=args.out,
            reference=args.reference,
            format=args.format,
            geometry=args.geometry,
            seed=args.seed,
            top=args.top,
            bootstrap=args.bootstrap,
            batch_size=args.batch_size,
            device=args.device,
            plots=not args.no_plots,
            progress=not args.quiet,
        )
        study, record = run_latent_study(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if record["reference_is_training_data"]:
        print(
            f"warning: seed {record['seed']} is the seed the snapshot trained on: "
            "these are its training showers",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(_headline(study, record, args.out), default=str))
    else:
        print(format_table(study, record))
        print(
            f"written: {args.out / 'latent.json'}"
            + "".join(f", {args.out / p}" for p in record["plots"])
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
