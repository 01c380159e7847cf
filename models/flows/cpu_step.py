"""The affine OnlineFlow's whole training step as one compiled CPU kernel.

:func:`fused_transform` runs the forward and backward pass of all members as a few
dozen torch kernels, and torch's fused Adam adds a few more; at the paper's shapes
(20 members x 250 events x 5 MADE blocks of 2 x 32) the step is then bound by per-kernel
overhead and by passes over activations that no longer fit in the cache, not by the
arithmetic. ``maf_step.c`` does forward, backward and Adam of one member at a time, one
member per OpenMP thread (torch's own OpenMP runtime, so the two never fight over the
cores), with the member's activations in its core's cache and the MADE masks used as
ranges rather than multiplied. See the C file for the details.

The C source is compiled at first use with the system C compiler (``cc``, or ``$CC``)
into a cache directory (``$TRIGGER_EMULATOR_CACHE``, default
``~/.cache/trigger-emulator``), keyed by the source, the flags, the compiler and the CPU
flags. Without a working compiler, or with ``ONLINEFLOW_STEP=torch`` in the environment,
:func:`step_kernel` returns None and the ensemble keeps the torch path; the two give the
same weights to float32 rounding (``tests/models/test_cpu_step.py``).

The kernel reads and writes the flow's parameters and the optimiser's ``exp_avg`` /
``exp_avg_sq`` / ``step`` state in place, in the format of ``torch.optim.Adam(...,
fused=True)``, so snapshots, resumes and a switch between the two paths see one state.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from itertools import pairwise
from pathlib import Path

import torch

from models.flows.batched_maf import BatchedMAF

__all__ = ["AffineStepKernel", "kernel_library", "step_kernel"]

SOURCE = Path(__file__).with_name("maf_step.c")
FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fopenmp", "-shared", "-fPIC")
_ENV_SWITCH = "ONLINEFLOW_STEP"
_CHOICES = ("auto", "kernel", "torch")


def _cache_dir() -> Path:
    root = os.environ.get("TRIGGER_EMULATOR_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "trigger-emulator"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _build(compiler: str) -> Path:
    """Compile ``maf_step.c`` (once per source, flags, compiler and CPU) and return the library."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256(
        b"\0".join([SOURCE.read_bytes(), " ".join(FLAGS).encode(), version.encode(), _cpu_flags().encode()])
    ).hexdigest()[:16]
    target = _cache_dir() / f"maf_step-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # same file system: the rename is atomic
        built = Path(tmp) / target.name
        result = subprocess.run([compiler, *FLAGS, "-o", str(built), str(SOURCE), "-lm"], capture_output=True, text=True)
        if result.returncode != 0:
            msg = f"{compiler} failed on {SOURCE.name}: {result.stderr.strip()[-1500:]}"
            raise RuntimeError(msg)
        os.replace(built, target)
    return target


@functools.lru_cache(maxsize=1)
def kernel_library() -> ctypes.CDLL | None:
    """The compiled step kernel, or None (with one warning) where it cannot be built."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        warnings.warn("OnlineFlow: no C compiler found; training uses the torch step", RuntimeWarning, stacklevel=2)
        return None
    try:
        library = ctypes.CDLL(str(_build(compiler)))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        warnings.warn(f"OnlineFlow: the CPU step kernel is not available ({err}); training uses the torch step",
                      RuntimeWarning, stacklevel=2)
        return None
    function = library.maf_affine_train_pass
    pointer = ctypes.c_void_p
    function.argtypes = [ctypes.c_int] * 6 + [pointer] * 7 + [ctypes.c_double] * 5 + [pointer]
    function.restype = ctypes.c_int
    return library


def _choice() -> str:
    value = os.environ.get(_ENV_SWITCH, "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        msg = f"{_ENV_SWITCH} must be one of {_CHOICES}, got {value!r}"
        raise ValueError(msg)
    return value


class AffineStepKernel:
    """One training step (forward, backward, Adam) of a :class:`BatchedMAF` in C.

    Built per buffer by :func:`step_kernel`; holds the pointers of the flow's parameters
    and of the Adam state, which must not be replaced while it is in use.
    """

    def __init__(self, flow: BatchedMAF, optimizer: torch.optim.Adam, library: ctypes.CDLL) -> None:
        self._function = library.maf_affine_train_pass
        group = optimizer.param_groups[0]
        self.lr = float(group["lr"])
        self.beta1, self.beta2 = (float(b) for b in group["betas"])
        self.eps = float(group["eps"])
        layers = flow._live_layers()
        states = []
        for parameter in layers:
            state = optimizer.state[parameter]
            if not state:  # as torch.optim.Adam(fused=True) creates it on its first step
                state["step"] = torch.zeros((), dtype=torch.float32, device=parameter.device)
                state["exp_avg"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
            if state["step"].dtype != torch.float32 or state["step"].device.type != "cpu":
                state["step"] = state["step"].to("cpu", torch.float32)
            for name in ("exp_avg", "exp_avg_sq"):
                if not state[name].is_contiguous() or state[name].dtype != torch.float32:
                    state[name] = state[name].contiguous().float()
            states.append(state)
        self._steps = [state["step"] for state in states]
        self.step_count = float(self._steps[0])
        array = ctypes.c_void_p * len(layers)
        self._params = array(*(p.data_ptr() for p in layers))
        self._exp_avg = array(*(s["exp_avg"].data_ptr() for s in states))
        self._exp_avg_sq = array(*(s["exp_avg_sq"].data_ptr() for s in states))
        self._step_counts = array(*(step.data_ptr() for step in self._steps))
        self._keep = (layers, states)  # the pointers stay valid while these live
        self._sizes = (flow.n_members, flow.n_blocks, flow.n_hidden_layers, flow.features, flow.hidden_features)

    def step(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """One Adam step on ``inputs`` ``(M, N, D)`` with per-event loss weights ``(M, N)``.

        Returns the member losses ``(M,)`` before the update,
        ``-(1/N) sum_n w_mn log p_m(x_mn)``, as the torch path computes them.
        """
        return self.train_pass(inputs, weights, [0, inputs.shape[1]])[0]

    def train_pass(self, inputs: torch.Tensor, weights: torch.Tensor, starts: list[int]) -> torch.Tensor:
        """Adam steps on the consecutive batches ``inputs[:, starts[i]:starts[i + 1]]``.

        Args:
            inputs: ``(M, N, D)`` float32 inputs of the whole pass, in training order.
            weights: ``(M, N)`` per-event loss weights.
            starts: batch boundaries, ``0 = starts[0] < ... < starts[-1] = N``.

        Returns:
            ``(n_batches, M)`` member losses of every step, before its update.

        Raises:
            ValueError: shapes that do not fit the flow, or bad boundaries.
            MemoryError: the kernel could not allocate its workspace.
        """
        m, b, layers, d, h = self._sizes
        n = inputs.shape[1] if inputs.dim() == 3 else -1
        if inputs.shape != (m, n, d) or weights.shape != (m, n):
            msg = f"AffineStepKernel: inputs must be ({m}, N, {d}) and weights ({m}, N), got {tuple(inputs.shape)} and {tuple(weights.shape)}"
            raise ValueError(msg)
        if len(starts) < 2 or starts[0] != 0 or starts[-1] != n or any(a >= c for a, c in pairwise(starts)):
            msg = f"AffineStepKernel: batch boundaries must rise from 0 to {n}, got {starts[:5]}..."
            raise ValueError(msg)
        inputs = inputs.to(torch.float32).contiguous()
        weights = weights.to(torch.float32).contiguous()
        n_batches = len(starts) - 1
        boundaries = (ctypes.c_int * len(starts))(*starts)
        losses = torch.empty(n_batches, m, dtype=torch.float32)
        rc = self._function(
            m, b, layers, d, h, n_batches, boundaries, inputs.data_ptr(), weights.data_ptr(),
            self._params, self._exp_avg, self._exp_avg_sq, self._step_counts,
            self.lr, self.beta1, self.beta2, self.eps, self.step_count + 1.0, losses.data_ptr(),
        )
        if rc != 0:
            msg = "OnlineFlow: the CPU step kernel ran out of memory" if rc == -1 else f"OnlineFlow: step kernel error {rc}"
            raise MemoryError(msg)
        self.step_count += n_batches
        return losses


def step_kernel(flow: object, optimizer: torch.optim.Optimizer) -> AffineStepKernel | None:
    """The compiled step for ``flow`` and ``optimizer``, or None where the torch step must run.

    The kernel runs for a float32 :class:`BatchedMAF` on the CPU trained by one plain
    ``torch.optim.Adam`` group (no weight decay, AMSGrad or maximise), unless
    ``ONLINEFLOW_STEP=torch``; ``ONLINEFLOW_STEP=kernel`` makes a missing kernel an error.

    Raises:
        ValueError: a bad ``ONLINEFLOW_STEP``.
        RuntimeError: ``ONLINEFLOW_STEP=kernel`` where the kernel cannot run.
    """
    choice = _choice()
    if choice == "torch":
        return None
    reason = _unsupported(flow, optimizer)
    library = kernel_library() if reason is None else None
    if reason is None and library is None:
        reason = "the kernel could not be built"
    if reason is not None:
        if choice == "kernel":
            msg = f"{_ENV_SWITCH}=kernel, but {reason}"
            raise RuntimeError(msg)
        return None
    assert isinstance(flow, BatchedMAF)
    assert isinstance(optimizer, torch.optim.Adam)
    assert library is not None
    return AffineStepKernel(flow, optimizer, library)


def _unsupported(flow: object, optimizer: torch.optim.Optimizer) -> str | None:
    if not isinstance(flow, BatchedMAF):
        return "the flow is not an affine BatchedMAF"
    first = flow._live_layers()[0]
    if first.device.type != "cpu" or first.dtype != torch.float32:
        return f"the flow is {first.dtype} on {first.device}, not float32 on the CPU"
    if not isinstance(optimizer, torch.optim.Adam) or len(optimizer.param_groups) != 1:
        return "the optimiser is not one torch.optim.Adam group"
    group = optimizer.param_groups[0]
    if group.get("weight_decay") or group.get("amsgrad") or group.get("maximize") or group.get("differentiable"):
        return "the Adam group uses weight decay, AMSGrad, maximize or differentiable"
    if isinstance(group["lr"], torch.Tensor):
        return "the learning rate is a tensor"
    return None
