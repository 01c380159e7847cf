"""The dijet generator's machinery (order, seeds, workers, resume, Parquet) and, with Pythia, its physics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("fastjet")

from stream.errors import SourceError  # noqa: E402
from stream.generators.dijet import (  # noqa: E402
    DijetConfig,
    DijetSource,
    event_randomness,
    main,
    write_parquet,
)
from stream.jets import DIJET_COLUMNS  # noqa: E402
from stream.sources import open_source  # noqa: E402


class SprayMaker:
    """Two back-to-back sprays of 40 particles drawn from the event seed (cheap, no Pythia).

    Signal events get a second prong in the first spray, so their jets are heavier.
    """

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.calls = 0

    def particles(self, signal: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            msg = "interrupted"
            raise KeyboardInterrupt(msg)
        rng = np.random.default_rng(seed)
        pt = rng.exponential(30.0, 80) + 1.0
        eta = rng.normal(0.0, 0.05, 80) + np.repeat([0.2, -0.2], 40)
        phi = rng.normal(0.0, 0.05, 80) + np.repeat([0.0, np.pi], 40)
        if signal:
            eta[:20] += 0.4
        return pt, eta, np.mod(phi + np.pi, 2 * np.pi) - np.pi


def _table(source: DijetSource, start: int = 0) -> pa.Table:
    return pa.Table.from_batches(list(source.batches(start)), schema=source.schema)


def test_batches_are_ordered_seeded_per_event_and_independent_of_workers() -> None:
    config = DijetConfig(n_events=20, batch_size=7, chunk_size=3, workers=1, signal_fraction=0.3, seed=5)
    source = DijetSource(config, SprayMaker())
    batches = list(source.batches())
    assert [b.num_rows for b in batches] == [7, 7, 6]
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["event_id", *DIJET_COLUMNS]
    assert table.column("event_id").to_pylist() == list(range(20))
    flags, _ = event_randomness(5, 0, 20, 0.3)
    assert table.column("is_signal").to_pylist() == flags.astype(float).tolist()
    two = _table(DijetSource(DijetConfig(**{**config.__dict__, "workers": 2}), SprayMaker()))
    assert two.equals(table)
    resumed = _table(source, start=13)
    assert resumed.equals(table.slice(13))
    # Signal sprays have a second prong: a heavier leading jet with smaller tau21.
    signal = table.column("is_signal").to_numpy() == 1
    assert signal.sum() == 7
    mj1 = table.column("mj1").to_numpy()
    assert mj1[signal].min() > mj1[~signal].max()
    assert np.median(table.column("tau21_j1").to_numpy()[signal]) < np.median(table.column("tau21_j1").to_numpy()[~signal])


def test_signal_fraction_is_binomial() -> None:
    flags, seeds = event_randomness(0, 0, 20_000, 0.01)
    assert abs(flags.sum() - 200) < 4 * np.sqrt(200)
    assert len(set(seeds.tolist())) == 20_000


def test_write_parquet_resumes_from_finished_parts(tmp_path: Path) -> None:
    out = tmp_path / "events.parquet"
    config = DijetConfig(n_events=30, batch_size=5, chunk_size=5, workers=1, signal_fraction=0.2)
    with pytest.raises(KeyboardInterrupt):
        write_parquet(DijetSource(config, SprayMaker(fail_after=17)), out, 30, part_events=10, progress=False)
    assert sorted(p.name for p in (tmp_path / "events.parquet.parts").iterdir()) == ["part-0000000000-0000000010.parquet"]
    summary = write_parquet(DijetSource(config, SprayMaker()), out, 30, part_events=10, progress=False)
    assert (summary["events"], summary["generated"]) == (30, 20)
    assert not (tmp_path / "events.parquet.parts").exists()
    fresh = _table(DijetSource(config, SprayMaker()))
    assert pq.read_table(out).equals(fresh.replace_schema_metadata(pq.read_table(out).schema.metadata))
    assert summary["signal_events"] == int(fresh.column("is_signal").to_numpy().sum())


def test_options_and_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SourceError, match=r"unknown options \['pt_min'\]"):
        open_source("dijet", {"dijet": {"pt_min": 3}})
    with pytest.raises(SourceError, match="takes no argument"):
        open_source("dijet:x")
    with pytest.raises(SourceError, match="invalid signal_fraction = 1.5"):
        DijetConfig(signal_fraction=1.5)
    assert main(["--events", "10", "--out", str(tmp_path / "x.parquet"), "--option", "dijet.bogus=1"]) == 2
    assert "unknown options ['bogus']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "example: python -m stream.generators.dijet" in capsys.readouterr().out


def test_pythia_events_have_dijet_physics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pythia8mc")
    out = tmp_path / "pythia.parquet"
    code = main(["--events", "24", "--out", str(out), "--quiet", "--option", "dijet.workers=1",
                 "--option", "dijet.signal_fraction=0.5", "--option", "dijet.seed=3"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"] == 24
    assert summary["events_per_s_per_core"] > 0
    table = pq.read_table(out)
    signal = table.column("is_signal").to_numpy() == 1
    mjj, mj1, pt = (table.column(c).to_numpy() for c in ("mjj", "mj1", "pt_lead"))
    assert 4 <= signal.sum() <= 20
    # W' (3.5 TeV) -> X (500 GeV) Y (100 GeV): m_jj near 3.5 TeV, the heavier jet near 500 GeV.
    assert 2800 < np.median(mjj[signal]) < 3800
    assert 350 < np.median(mj1[signal]) < 600
    # QCD above pT-hat 1.2 TeV: leading jets around 1.2 TeV and above.
    assert np.median(pt[~signal]) > 1000
    rerun = DijetSource(DijetConfig(n_events=24, workers=1, signal_fraction=0.5, seed=3))
    assert _table(rerun, start=20).column("mjj").to_pylist() == table.column("mjj").to_pylist()[20:]
