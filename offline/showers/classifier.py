"""Binary classifier test: can a network tell generated from reference showers?

A fully connected network is trained to separate the two samples; its AUC on a test
split measures how distinguishable they are (0.5: indistinguishable, 1: fully
separable). The classifier output is calibrated on a held-out split, and the binary
cross-entropy ``BCE`` of the calibrated classifier on the test split gives a lower bound
on the Jensen-Shannon divergence of the two samples: ``JSD = (ln 2 - BCE) / ln 2``
(0 for identical samples, 1 for disjoint ones).

Per run, each class is shuffled and split into train / validation / test (default
60/20/20, classes balanced by truncating the larger sample). Inputs are standardised
with the mean and standard deviation of the *training* split only. The validation split
selects the epoch and fits the calibration (isotonic regression by default, or Platt
scaling: a logistic regression on the logit); the test split is only ever used for the
final numbers. AUC is computed from the raw scores (ranking is unchanged by a monotone
calibration), JSD from the calibrated probabilities.

Two presets (:data:`CLASSIFIER_PRESETS`, ``--classifier`` on the command line):

* ``fast`` (default): 2 x 128 LeakyReLU, Adam 1e-3, batches of 512, early stopping on
  the validation BCE (patience 6, at most 60 epochs), Platt calibration, 5 runs. Ours;
  minutes on a CPU. Platt scaling has two parameters, so fitting it on the validation
  split costs the test BCE only ~1/n_validation nats; isotonic regression has as many
  parameters as blocks (often 10-20 for two equal samples), and its overfit pushes the
  classifier JSD of equal samples below zero by a few times its statistical error at
  n = 1000.
* ``calochallenge``: the settings of the CaloChallenge evaluation (arXiv:2410.21611,
  ``evaluate.py`` of the challenge): 2 x 2048 LeakyReLU, Adam 2e-4, batches of 1000,
  50 epochs, 60/20/20 split, the epoch with the best accuracy on the selection split
  kept, isotonic calibration on that split; one run. Use it so that AUCs stand beside
  the challenge's; it is slow on a CPU (see docs/showers.md for the cost).

Statistics (what the ``±`` means):

* **Calibrated probabilities are kept in** ``[1/(n+2), 1 - 1/(n+2)]`` with ``n`` the
  number of calibration events. Isotonic regression can output exactly 0 or 1 in its end
  blocks; one test event in such a block would otherwise cost ~16 nats and move a run's
  JSD far below zero. ``1/(n+2)`` is the Laplace estimate for an empty end block.
* Per run, the AUC error is DeLong's (:func:`offline.showers.auc_error.delong_auc`),
  the error from the finite test set. The JSD error adds in quadrature the standard
  error of the mean per-event ``(ln 2 - loss) / ln 2`` on the test split and the spread
  of the test JSD when the calibration is refitted on 20 bootstrap replicas of the
  validation split (the calibration is fitted on finitely many events too).
* Over runs, :attr:`ClassifierResult.auc_error` and :attr:`~ClassifierResult.jsd_error`
  are the *median per-run* errors: runs re-split the same showers, so averaging them
  does not shrink the statistical error by ``sqrt(runs)``. ``std`` is the spread over
  runs (retraining and re-splitting), reported beside it.
* The classifier JSD is an estimator and can come out negative for samples from the
  same distribution; a negative mean is *consistent with 0* when it lies within its
  error (:attr:`ClassifierResult.jsd_consistent_with_zero`). Single runs are never
  clamped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from offline.showers.auc_error import delong_auc

__all__ = [
    "CLASSIFIER_PRESETS",
    "ClassifierConfig",
    "ClassifierResult",
    "classifier_preset",
    "classifier_test",
]

_LN2 = math.log(2.0)
_CALIBRATION_BOOTSTRAP = 20


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the classifier test (defaults: the ``fast`` preset).

    Attributes:
        name: preset name (informational, written to ``metrics.json``).
        hidden: widths of the hidden layers.
        epochs: maximum training epochs.
        batch_size: minibatch size.
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay.
        patience: epochs without improvement of the selection metric before stopping;
            ``None`` trains all ``epochs``.
        selection: how the kept epoch is chosen on the validation split: ``"loss"``
            (lowest BCE) or ``"accuracy"`` (highest accuracy, as the CaloChallenge).
        split: train, validation, test fractions.
        n_runs: independent trainings (seeds ``seed``, ``seed + 1``, ...).
        calibration: ``"isotonic"`` or ``"platt"``.
        seed: base seed.
        n_threads: torch CPU threads while training (``None``: leave torch's setting).
            One thread is the default: these networks are small, and extra threads
            mostly spin when the machine is shared.
    """

    name: str = "fast"
    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 60
    batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 6
    selection: str = "loss"
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    n_runs: int = 5
    calibration: str = "platt"
    seed: int = 0
    n_threads: int | None = 1

    def __post_init__(self) -> None:
        if (
            len(self.split) != 3
            or any(f <= 0 for f in self.split)
            or abs(sum(self.split) - 1) > 1e-6
        ):
            msg = f"split must be three positive fractions summing to 1, got {self.split!r}"
            raise ValueError(msg)
        if self.calibration not in ("isotonic", "platt"):
            msg = f"calibration must be 'isotonic' or 'platt', got {self.calibration!r}"
            raise ValueError(msg)
        if self.selection not in ("loss", "accuracy"):
            msg = f"selection must be 'loss' or 'accuracy', got {self.selection!r}"
            raise ValueError(msg)
        if self.n_runs < 1 or self.epochs < 1 or self.batch_size < 1:
            msg = f"n_runs, epochs and batch_size must be positive, got {self.n_runs}, {self.epochs}, {self.batch_size}"
            raise ValueError(msg)


CLASSIFIER_PRESETS: dict[str, ClassifierConfig] = {
    "fast": ClassifierConfig(),
    "calochallenge": ClassifierConfig(
        name="calochallenge",
        hidden=(2048, 2048),
        epochs=50,
        batch_size=1000,
        learning_rate=2e-4,
        patience=None,
        selection="accuracy",
        n_runs=1,
        calibration="isotonic",
    ),
}
"""Named classifier settings (see the module docstring)."""


def classifier_preset(name: str, **overrides: Any) -> ClassifierConfig:
    """The preset ``name`` with some fields replaced.

    Raises:
        ValueError: unknown preset (the known ones are listed).

    Example:
        >>> classifier_preset("calochallenge", n_runs=2).hidden
        (2048, 2048)
    """
    if name not in CLASSIFIER_PRESETS:
        msg = f"unknown classifier preset {name!r}; known: {', '.join(sorted(CLASSIFIER_PRESETS))}"
        raise ValueError(msg)
    return replace(CLASSIFIER_PRESETS[name], **overrides)


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_test`: per-run lists, means, errors and spreads.

    Attributes:
        auc: test AUC per run.
        auc_errors: DeLong error of each run's AUC.
        jsd: ``(ln 2 - BCE) / ln 2`` of the calibrated classifier per run.
        jsd_errors: standard error of each run's JSD from its test events.
        bce: calibrated test BCE per run (nats).
        epochs: epochs trained per run.
        best_epochs: the kept (selected) epoch per run.
        n_train: showers per class in the training split.
        n_validation: showers per class in the validation split.
        n_test: showers per class in the test split.
        config: the settings used.
    """

    auc: list[float]
    auc_errors: list[float]
    jsd: list[float]
    jsd_errors: list[float]
    bce: list[float]
    epochs: list[int]
    best_epochs: list[int]
    n_train: int
    n_validation: int
    n_test: int
    config: ClassifierConfig = field(default_factory=ClassifierConfig)

    @property
    def auc_mean(self) -> float:
        """Mean AUC over runs."""
        return float(np.mean(self.auc))

    @property
    def auc_error(self) -> float:
        """Statistical error of the AUC: the median per-run DeLong error."""
        return float(np.median(self.auc_errors))

    @property
    def auc_std(self) -> float:
        """Standard deviation of the AUC over runs (0 for a single run)."""
        return float(np.std(self.auc, ddof=1)) if len(self.auc) > 1 else 0.0

    @property
    def jsd_mean(self) -> float:
        """Mean classifier JSD over runs (not clamped; may be slightly negative)."""
        return float(np.mean(self.jsd))

    @property
    def jsd_error(self) -> float:
        """Statistical error of the classifier JSD: the median per-run error."""
        return float(np.median(self.jsd_errors))

    @property
    def jsd_std(self) -> float:
        """Standard deviation of the classifier JSD over runs."""
        return float(np.std(self.jsd, ddof=1)) if len(self.jsd) > 1 else 0.0

    @property
    def jsd_consistent_with_zero(self) -> bool:
        """Whether the mean JSD lies within two errors of 0."""
        return abs(self.jsd_mean) <= 2.0 * self.jsd_error

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {
            "auc": {
                "mean": self.auc_mean,
                "error": self.auc_error,
                "std": self.auc_std,
                "runs": self.auc,
                "run_errors": self.auc_errors,
            },
            "jsd": {
                "mean": self.jsd_mean,
                "error": self.jsd_error,
                "std": self.jsd_std,
                "runs": self.jsd,
                "run_errors": self.jsd_errors,
                "consistent_with_zero": self.jsd_consistent_with_zero,
            },
            "bce": self.bce,
            "epochs": self.epochs,
            "best_epochs": self.best_epochs,
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "n_test": self.n_test,
            "config": asdict(self.config),
            "error_definition": (
                "per-run statistical error (AUC: DeLong on the test split; JSD: standard error of the "
                "per-event (ln 2 - loss)/ln 2 on the test split and calibration-bootstrap spread, in "
                "quadrature), median over runs; std: spread over runs"
            ),
        }


def _network(n_in: int, hidden: tuple[int, ...]) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.LeakyReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*layers)


def _logits(net: torch.nn.Module, x: torch.Tensor, batch: int = 8192) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        return np.concatenate(
            [net(x[i : i + batch]).squeeze(1).numpy() for i in range(0, len(x), batch)]
        )


def _event_losses(prob: np.ndarray, label: np.ndarray, floor: float) -> np.ndarray:
    p = np.clip(prob, floor, 1.0 - floor)
    return -(label * np.log(p) + (1 - label) * np.log(1 - p))


def _calibrate(z_fit: np.ndarray, y_fit: np.ndarray, z: np.ndarray, method: str) -> np.ndarray:
    """Calibrated probabilities of logits ``z`` from a calibration fitted on ``(z_fit, y_fit)``."""
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z_fit, y_fit)
        return np.asarray(iso.predict(z))
    platt = LogisticRegression().fit(z_fit[:, None], y_fit)
    return np.asarray(platt.predict_proba(z[:, None])[:, 1])


def _split(
    n: int, fractions: tuple[float, float, float], rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    order = rng.permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


@dataclass(frozen=True)
class _Run:
    auc: float
    auc_error: float
    jsd: float
    jsd_error: float
    bce: float
    epochs: int
    best_epoch: int
    sizes: tuple[int, int, int]


def _selection_score(logits: np.ndarray, labels: np.ndarray, selection: str) -> float:
    """Higher is better: minus the BCE, or the accuracy."""
    if selection == "accuracy":
        return float(np.mean((logits > 0) == (labels > 0.5)))
    prob = expit(logits)
    return -float(np.mean(_event_losses(prob, labels, 1e-7)))


def _train(
    t_tr: torch.Tensor, l_tr: torch.Tensor, t_va: torch.Tensor, y_va: np.ndarray,
    config: ClassifierConfig, seed: int,
) -> tuple[torch.nn.Module, int, int]:  # fmt: skip
    torch.manual_seed(seed)
    net = _network(t_tr.shape[1], config.hidden)
    opt = torch.optim.Adam(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    best_score, best_state, best_epoch, epoch = -math.inf, None, 0, 0
    for epoch in range(1, config.epochs + 1):
        net.train()
        order = torch.randperm(len(t_tr), generator=gen)
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(t_tr[idx]).squeeze(1), l_tr[idx])
            loss.backward()
            opt.step()
        score = _selection_score(_logits(net, t_va), y_va, config.selection)
        if score > best_score + 1e-6:
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif config.patience is not None and epoch - best_epoch >= config.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net, epoch, best_epoch


def _one_run(
    reference: np.ndarray, generated: np.ndarray, config: ClassifierConfig, seed: int
) -> _Run:
    rng = np.random.default_rng(seed)
    ref_parts = _split(len(reference), config.split, rng)
    gen_parts = _split(len(generated), config.split, rng)

    def stack(k: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([reference[ref_parts[k]], generated[gen_parts[k]]])
        y = np.concatenate([np.zeros(len(ref_parts[k])), np.ones(len(gen_parts[k]))])
        return x, y

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = stack(0), stack(1), stack(2)
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(((x - mean) / std).astype(np.float32))

    t_tr, t_va, t_te = tensor(x_tr), tensor(x_va), tensor(x_te)
    l_tr = torch.as_tensor(y_tr.astype(np.float32))
    net, epoch, best_epoch = _train(t_tr, l_tr, t_va, y_va, config, seed)

    z_va, z_te = _logits(net, t_va), _logits(net, t_te)
    floor = 1.0 / (len(y_va) + 2.0)
    losses = _event_losses(_calibrate(z_va, y_va, z_te, config.calibration), y_te, floor)
    bce = float(losses.mean())
    per_event_jsd = (_LN2 - losses) / _LN2
    test_error = float(per_event_jsd.std(ddof=1) / math.sqrt(len(losses)))
    # The calibration is fitted on finitely many events too: refit it on bootstrap
    # replicas of the validation split and take the spread of the test JSD.
    boot = np.random.default_rng(seed + 7919)
    replicas = []
    for _ in range(_CALIBRATION_BOOTSTRAP):
        rows = boot.integers(0, len(y_va), len(y_va))
        if np.unique(y_va[rows]).size < 2:
            continue
        p_boot = _calibrate(z_va[rows], y_va[rows], z_te, config.calibration)
        replicas.append(1.0 - float(_event_losses(p_boot, y_te, floor).mean()) / _LN2)
    calibration_error = float(np.std(replicas, ddof=1)) if len(replicas) > 1 else 0.0
    auc, auc_error = delong_auc(z_te, y_te)
    sizes = (len(ref_parts[0]), len(ref_parts[1]), len(ref_parts[2]))
    return _Run(
        auc=auc,
        auc_error=auc_error,
        jsd=float(per_event_jsd.mean()),
        jsd_error=math.hypot(test_error, calibration_error),
        bce=bce,
        epochs=epoch,
        best_epoch=best_epoch,
        sizes=sizes,
    )


def classifier_test(
    reference: np.ndarray,
    generated: np.ndarray,
    config: ClassifierConfig | None = None,
    *,
    progress: bool = False,
    label: str = "classifier",
) -> ClassifierResult:
    """Train ``config.n_runs`` classifiers to separate ``generated`` from ``reference``.

    Args:
        reference: ``(N_ref, d)`` features of reference showers.
        generated: ``(N_gen, d)`` features of generated showers.
        config: settings (defaults: :class:`ClassifierConfig`, the ``fast`` preset).
        progress: show a tqdm bar over runs on stderr.
        label: bar description.

    Returns:
        AUC and classifier JSD per run with their errors, means and spreads.

    Raises:
        ValueError: mismatched feature widths, non-finite features, or too few showers.
    """
    cfg = config or ClassifierConfig()
    ref = np.asarray(reference, dtype=np.float64)
    gen = np.asarray(generated, dtype=np.float64)
    if ref.ndim != 2 or gen.ndim != 2 or ref.shape[1] != gen.shape[1]:
        msg = f"feature matrices must be (N, d) with equal d, got {ref.shape} and {gen.shape}"
        raise ValueError(msg)
    for name, x in (("reference", ref), ("generated", gen)):
        if not np.all(np.isfinite(x)):
            rows = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
            msg = f"{name} features are not finite in {rows.size} rows (first row {int(rows[0])})"
            raise ValueError(msg)
    n = min(len(ref), len(gen))
    if n * min(cfg.split) < 10:
        msg = f"too few showers for the classifier test: {n} per class (need >= {int(10 / min(cfg.split))})"
        raise ValueError(msg)
    balance = np.random.default_rng(cfg.seed)
    ref = ref[np.sort(balance.permutation(len(ref))[:n])]
    gen = gen[np.sort(balance.permutation(len(gen))[:n])]
    runs: list[_Run] = []
    previous_threads = torch.get_num_threads()
    if cfg.n_threads is not None:
        torch.set_num_threads(cfg.n_threads)
    try:
        for run in tqdm(range(cfg.n_runs), desc=label, disable=not progress, leave=False):
            runs.append(_one_run(ref, gen, cfg, cfg.seed + run))
    finally:
        torch.set_num_threads(previous_threads)
    sizes = runs[-1].sizes
    return ClassifierResult(
        auc=[r.auc for r in runs],
        auc_errors=[r.auc_error for r in runs],
        jsd=[r.jsd for r in runs],
        jsd_errors=[r.jsd_error for r in runs],
        bce=[r.bce for r in runs],
        epochs=[r.epochs for r in runs],
        best_epochs=[r.best_epoch for r in runs],
        n_train=sizes[0],
        n_validation=sizes[1],
        n_test=sizes[2],
        config=cfg,
    )
