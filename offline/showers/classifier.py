"""Binary classifier test: can a network tell generated from reference showers?

Follows the CaloChallenge evaluation (arXiv:2410.21611): a fully connected network is
trained to separate the two samples; its AUC on a test split measures how distinguishable
they are (0.5: indistinguishable, 1: fully separable). The classifier output is
calibrated on a held-out split, and the binary cross-entropy ``BCE`` of the calibrated
classifier on the test split gives a lower bound on the Jensen-Shannon divergence of the
two samples: ``JSD = (ln 2 - BCE) / ln 2`` (0 for identical samples, 1 for disjoint ones;
small negative values are statistical fluctuations around 0).

Per run, each class is shuffled and split into train / validation / test (default
60/20/20, classes balanced by truncating the larger sample). Inputs are standardised
with the mean and standard deviation of the *training* split only. The network
(``hidden`` layers, LeakyReLU, Adam) trains with early stopping on the validation loss;
the validation split is then used to fit the calibration (isotonic regression by default,
or Platt scaling: a logistic regression on the logit); the test split is only ever used
for the final numbers. AUC is computed from the raw scores (ranking is unchanged by a
monotone calibration), JSD from the calibrated probabilities. ``n_runs`` runs with
different seeds (different splits and initialisations) give mean and standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

__all__ = ["ClassifierConfig", "ClassifierResult", "classifier_test"]

_EPS = 1e-7


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the classifier test (defaults suit high-level features).

    Attributes:
        hidden: widths of the hidden layers.
        epochs: maximum training epochs.
        batch_size: minibatch size.
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay.
        patience: epochs without validation improvement before stopping.
        split: train, validation, test fractions.
        n_runs: independent trainings (seeds ``seed``, ``seed + 1``, ...).
        calibration: ``"isotonic"`` or ``"platt"``.
        seed: base seed.
        n_threads: torch CPU threads while training (``None``: leave torch's setting).
            One thread is the default: these networks are small, and extra threads
            mostly spin when the machine is shared.
    """

    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 60
    batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 6
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    n_runs: int = 5
    calibration: str = "isotonic"
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
        if self.n_runs < 1 or self.epochs < 1 or self.batch_size < 1:
            msg = f"n_runs, epochs and batch_size must be positive, got {self.n_runs}, {self.epochs}, {self.batch_size}"
            raise ValueError(msg)


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_test` (per-run lists and their mean and std).

    Attributes:
        auc: test AUC per run.
        jsd: ``(ln 2 - BCE) / ln 2`` of the calibrated classifier per run.
        bce: calibrated test BCE per run (nats).
        epochs: epochs trained per run (best epoch + patience, or the maximum).
        n_train: showers per class in the training split.
        n_validation: showers per class in the validation split.
        n_test: showers per class in the test split.
    """

    auc: list[float]
    jsd: list[float]
    bce: list[float]
    epochs: list[int]
    n_train: int
    n_validation: int
    n_test: int
    config: ClassifierConfig = field(default_factory=ClassifierConfig)

    @property
    def auc_mean(self) -> float:
        """Mean AUC over runs."""
        return float(np.mean(self.auc))

    @property
    def auc_std(self) -> float:
        """Standard deviation of the AUC over runs (0 for a single run)."""
        return float(np.std(self.auc, ddof=1)) if len(self.auc) > 1 else 0.0

    @property
    def jsd_mean(self) -> float:
        """Mean classifier JSD over runs."""
        return float(np.mean(self.jsd))

    @property
    def jsd_std(self) -> float:
        """Standard deviation of the classifier JSD over runs."""
        return float(np.std(self.jsd, ddof=1)) if len(self.jsd) > 1 else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {
            "auc": {"mean": self.auc_mean, "std": self.auc_std, "runs": self.auc},
            "jsd": {"mean": self.jsd_mean, "std": self.jsd_std, "runs": self.jsd},
            "bce": self.bce,
            "epochs": self.epochs,
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "n_test": self.n_test,
            "config": asdict(self.config),
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


def _bce(prob: np.ndarray, label: np.ndarray) -> float:
    p = np.clip(prob, _EPS, 1 - _EPS)
    return float(-np.mean(label * np.log(p) + (1 - label) * np.log(1 - p)))


def _split(
    n: int, fractions: tuple[float, float, float], rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    order = rng.permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def _one_run(
    reference: np.ndarray, generated: np.ndarray, config: ClassifierConfig, seed: int
) -> tuple[float, float, float, int, tuple[int, int, int]]:
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
    torch.manual_seed(seed)
    net = _network(t_tr.shape[1], config.hidden)
    opt = torch.optim.Adam(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    best_loss, best_state, best_epoch, epoch = math.inf, None, 0, 0
    for epoch in range(1, config.epochs + 1):
        net.train()
        order = torch.randperm(len(t_tr), generator=gen)
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(t_tr[idx]).squeeze(1), l_tr[idx])
            loss.backward()
            opt.step()
        val_prob = 1.0 / (1.0 + np.exp(-_logits(net, t_va)))
        val_loss = _bce(val_prob, y_va)
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)

    z_va, z_te = _logits(net, t_va), _logits(net, t_te)
    if config.calibration == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z_va, y_va)
        p_te = iso.predict(z_te)
    else:
        platt = LogisticRegression().fit(z_va[:, None], y_va)
        p_te = platt.predict_proba(z_te[:, None])[:, 1]
    bce = _bce(p_te, y_te)
    auc = float(roc_auc_score(y_te, z_te))
    jsd = (math.log(2) - bce) / math.log(2)
    sizes = (len(ref_parts[0]), len(ref_parts[1]), len(ref_parts[2]))
    return auc, jsd, bce, epoch, sizes


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
        config: settings (defaults: :class:`ClassifierConfig`).
        progress: show a tqdm bar over runs on stderr.
        label: bar description.

    Returns:
        AUC and classifier JSD per run, with means and standard deviations.

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
    aucs, jsds, bces, epochs = [], [], [], []
    sizes = (0, 0, 0)
    previous_threads = torch.get_num_threads()
    if cfg.n_threads is not None:
        torch.set_num_threads(cfg.n_threads)
    try:
        for run in tqdm(range(cfg.n_runs), desc=label, disable=not progress, leave=False):
            auc, jsd, bce, ep, sizes = _one_run(ref, gen, cfg, cfg.seed + run)
            aucs.append(auc)
            jsds.append(jsd)
            bces.append(bce)
            epochs.append(ep)
    finally:
        torch.set_num_threads(previous_threads)
    return ClassifierResult(aucs, jsds, bces, epochs, sizes[0], sizes[1], sizes[2], cfg)
