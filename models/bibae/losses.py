"""BIB-AE losses: KLD, Gaussian-kernel MMD, sorted-kernel MMD, WGAN gradient penalty.

* :func:`kld`: KL divergence of the encoder's diagonal Gaussian to N(0, 1), summed over
  latents, averaged over the batch (:func:`kld_per_latent` keeps the latents apart, for
  the latent study of arXiv 2102.12491).
* :func:`mmd`: maximum mean discrepancy with a sum of Gaussian kernels (two widths in
  arXiv 2005.05334, between the encoded latents and N(0, 1) draws).
* :class:`SortedKernelMMD`: the Post Processor's loss on cell energies (arXiv
  2005.05334): each shower's cells are sorted, the top ``top`` kept, the ranks cut into
  sliding windows of ``window`` ranks with ``stride``, and per window the MMD between the
  real and the generated batch's values is taken with a Gaussian kernel; the windows'
  MMDs are averaged. The biased (V-statistic) estimator is used: it is exactly zero for
  identical inputs and never negative.
* :func:`gradient_penalty`: WGAN-GP (Gulrajani et al., arXiv 1704.00028).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["SortedKernelMMD", "gradient_penalty", "kld", "kld_per_latent", "mmd"]

_KERNEL_ELEMENTS = 1 << 22


def kld_per_latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent, averaged over the batch: ``(D,)``."""
    return (0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)).mean(0)


def kld(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KLD summed over latents, averaged over the batch.

    Example:
        >>> float(kld(torch.zeros(4, 3), torch.zeros(4, 3)))
        0.0
    """
    return kld_per_latent(mu, logvar).sum()


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] = (0.5, 2.0)) -> torch.Tensor:
    """Biased MMD² between samples ``x`` ``(n, d)`` and ``y`` ``(m, d)``, Gaussian kernels summed.

    The kernel widths are ``bandwidths`` times ``sqrt(d)``: two unit-variance points lie
    about ``sqrt(2 d)`` apart, so the kernels neither saturate nor vanish in many dimensions
    and the MMD keeps a gradient even for latents far from N(0, 1).

    Example:
        >>> x = torch.randn(50, 2)
        >>> float(mmd(x, x))
        0.0
    """
    if x.dim() == 1:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    both = torch.cat((x, y), 0)
    distance = torch.cdist(both, both).square() / both.shape[1]
    kernel = sum(torch.exp(-distance / (2.0 * h * h)) for h in bandwidths)
    n = x.shape[0]
    k_xx, k_yy, k_xy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    return (k_xx.mean() + k_yy.mean() - 2.0 * k_xy.mean()).clamp_min(0.0)


class SortedKernelMMD:
    """MMD on sorted cell energies, in sliding windows over the ranks.

    Args:
        top: cells kept per shower after sorting (descending); fewer if the grid is smaller.
        window: ranks per window.
        stride: step between windows.
        bandwidth: Gaussian kernel width, in units of ``transform(cell energy)``.
        transform: applied to cell energies before the kernel (default ``log1p``, so one
            width suits the MIP cells and the core).

    Example:
        >>> loss = SortedKernelMMD(top=50, window=10, stride=5)
        >>> showers = torch.rand(8, 4, 5, 5)
        >>> float(loss(showers, showers))
        0.0
        >>> bool(loss(showers + 1.0, showers) > 0)
        True
    """

    def __init__(
        self, top: int = 2000, window: int = 20, stride: int = 10, bandwidth: float = 0.5,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = torch.log1p,
    ) -> None:
        for name, value in (("top", top), ("window", window), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"SortedKernelMMD: {name} must be an integer >= 1, got {value!r}"
                raise ValueError(msg)
        if not bandwidth > 0:
            msg = f"SortedKernelMMD: bandwidth must be > 0, got {bandwidth!r}"
            raise ValueError(msg)
        self.top, self.window, self.stride, self.bandwidth = top, window, stride, float(bandwidth)
        self.transform = transform

    def __repr__(self) -> str:
        return f"SortedKernelMMD(top={self.top}, window={self.window}, stride={self.stride}, bandwidth={self.bandwidth})"

    def sorted_cells(self, showers: torch.Tensor) -> torch.Tensor:
        """``(b, ...)`` showers → ``(b, k)`` their top ``k`` transformed cells, descending."""
        flat = showers.flatten(1)
        k = min(self.top, flat.shape[1])
        values = torch.topk(flat, k, dim=1, sorted=True).values
        return self.transform(values) if self.transform is not None else values

    def __call__(self, generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Mean over windows of the biased MMD² of the two batches' window values."""
        a, b = self.sorted_cells(generated), self.sorted_cells(real)
        k = a.shape[1]
        window = min(self.window, k)
        # (n_windows, batch * window) values of each side
        a_windows = a.unfold(1, window, self.stride).permute(1, 0, 2).flatten(1)
        b_windows = b.unfold(1, window, self.stride).permute(1, 0, 2).flatten(1)
        scale = -0.5 / (self.bandwidth * self.bandwidth)

        def mean_kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return torch.exp((u.unsqueeze(2) - v.unsqueeze(1)).square() * scale).mean((1, 2))

        size = a_windows.shape[1]
        chunk = max(1, _KERNEL_ELEMENTS // (size * size))  # windows per chunk, bounding memory
        parts = []
        for start in range(0, a_windows.shape[0], chunk):
            u, v = a_windows[start : start + chunk], b_windows[start : start + chunk]
            parts.append(mean_kernel(u, u) + mean_kernel(v, v) - 2.0 * mean_kernel(u, v))
        return torch.cat(parts).clamp_min(0.0).mean()


def gradient_penalty(
    score: Callable[..., torch.Tensor], real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor],
    alpha: torch.Tensor, *extra: torch.Tensor, per_element: bool = False,
) -> torch.Tensor:
    """WGAN-GP: mean of ``(|∇ score(x̂)| - 1)²`` at ``x̂ = α real + (1 - α) fake``.

    Args:
        score: the critic; called as ``score(*x̂, *extra)``.
        real: the real inputs (one or more tensors with the batch first).
        fake: the generated inputs, same shapes.
        alpha: ``(b,)`` interpolation weights.
        extra: further critic arguments (conditions), not interpolated.
        per_element: penalise every element's derivative on its own (for critics that
            act on each input element separately, like :class:`LatentCritic`).

    Returns:
        The penalty (unweighted).
    """
    points = []
    for r, f in zip(real, fake, strict=True):
        a = alpha.view(-1, *([1] * (r.dim() - 1)))
        points.append((a * r.detach() + (1.0 - a) * f.detach()).requires_grad_(True))
    out = score(*points, *extra)
    grads = torch.autograd.grad(out.sum(), points, create_graph=True)
    if per_element:
        return torch.cat([(g.abs() - 1.0).square().flatten() for g in grads]).mean()
    norm = torch.cat([g.flatten(1) for g in grads], 1).norm(dim=1)
    return (norm - 1.0).square().mean()
