"""A model's whole training state as named tensors plus JSON, and back.

Snapshots are safetensors + JSON so that loading one never runs code. Every model with
several networks (BIB-AE: encoder, decoder, critics, Post Processor; shower flows: one
flow per layer) has modules, optimisers, learning-rate schedules, random generators and
a few loose tensors (SWA averages, standardisations, KDE points). :func:`pack_state`
turns all of them into ``(tensors, meta)``: a flat ``name → tensor`` mapping and a
JSON-serialisable dictionary; :func:`unpack_state` loads them back into freshly built
objects of the same architecture.

Tensor names::

    module.<name>.<state_dict key>            parameters and buffers of a module
    optim.<name>.<param index>.<state key>    tensor state of an optimiser (Adam moments, step)
    gen.<name>                                a torch.Generator's state (uint8)
    tensor.<name>                             loose tensors

The JSON part holds each optimiser's ``param_groups`` (learning rates, betas, ...) and its
non-tensor per-parameter state, each scheduler's ``state_dict`` and the devices of the
generators. Loading checks names and shapes and names what is missing or wrong.

Example:
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    >>> net(torch.ones(3, 2)).sum().backward(); opt.step()
    >>> tensors, meta = pack_state(modules={"net": net}, optimizers={"net": opt})
    >>> sorted(tensors)[:2]
    ['module.net.bias', 'module.net.weight']
    >>> twin = torch.nn.Linear(2, 1)
    >>> twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    >>> _ = unpack_state(tensors, meta, modules={"net": twin}, optimizers={"net": twin_opt})
    >>> bool(torch.equal(twin.weight, net.weight))
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["StateError", "pack_state", "require_counters", "unpack_state"]


class StateError(KeyError):
    """A saved state does not fit the objects it is loaded into (names the tensor or key)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


def require_counters(training_state: Mapping[str, Any], keys: tuple[str, ...], owner: str) -> None:
    """Check that a saved ``training_state`` holds every counter in ``keys``.

    Raises:
        StateError: naming the first missing key, the owner and the keys present.
    """
    for key in keys:
        if key not in training_state:
            msg = f"{owner} training_state lacks {key!r} (have {sorted(training_state)})"
            raise StateError(msg)


def _json_ready(value: Any, where: str) -> Any:
    """``value`` with tuples as lists; raises for anything JSON cannot hold."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v, where) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    msg = f"{where}: value {value!r} of type {type(value).__name__} cannot be saved as JSON"
    raise TypeError(msg)


def pack_state(
    *,
    modules: Mapping[str, nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    tensors: Mapping[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Named tensors and JSON metadata of everything a model needs to resume.

    Args:
        modules: name → module (parameters and buffers).
        optimizers: name → optimiser (state tensors, param groups).
        schedulers: name → LR scheduler (anything with ``state_dict``/``load_state_dict``
            whose state is JSON-serialisable).
        generators: name → random generator.
        tensors: name → loose tensor.

    Returns:
        ``(tensors, meta)``; tensors are detached, on their own devices.

    Raises:
        TypeError: a scheduler or optimiser holds state JSON cannot represent.
    """
    out: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"optimizers": {}, "schedulers": {}, "generators": {}}
    for name, module in (modules or {}).items():
        for key, value in module.state_dict().items():
            out[f"module.{name}.{key}"] = value.detach()
    for name, optimizer in (optimizers or {}).items():
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, per_param in state["state"].items():
            for key, value in per_param.items():
                if isinstance(value, torch.Tensor):
                    out[f"optim.{name}.{index}.{key}"] = value.detach()
                else:
                    scalars.setdefault(str(index), {})[key] = _json_ready(value, f"optimizer {name!r}")
        meta["optimizers"][name] = {
            "param_groups": _json_ready(state["param_groups"], f"optimizer {name!r}"),
            "scalars": scalars,
            "n_params": len(state["state"]),
        }
    for name, scheduler in (schedulers or {}).items():
        state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
        meta["schedulers"][name] = _json_ready(state, f"scheduler {name!r}")
    for name, generator in (generators or {}).items():
        out[f"gen.{name}"] = generator.get_state()
        meta["generators"][name] = str(generator.device)
    for name, value in (tensors or {}).items():
        out[f"tensor.{name}"] = value.detach()
    json.dumps(meta)  # fail here, not at snapshot time
    return out, meta


def _take(tensors: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in tensors:
        prefix = key.rsplit(".", 1)[0]
        near = sorted(k for k in tensors if k.startswith(prefix))[:5]
        msg = f"saved state lacks tensor {key!r} (have {len(tensors)} tensors; similar: {near})"
        raise StateError(msg)
    return tensors[key]


def _optional_keys(module: nn.Module) -> set[str]:
    """State-dict keys a snapshot may lack: the ``OPTIONAL_STATE`` names of each submodule.

    A module class lists there the buffers it gained after snapshots were written (their
    default, set in ``__init__``, is what an older snapshot means)."""
    keys: set[str] = set()
    for name, sub in module.named_modules():
        for key in getattr(type(sub), "OPTIONAL_STATE", ()):
            keys.add(f"{name}.{key}" if name else key)
    return keys


def unpack_state(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    *,
    modules: Mapping[str, nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    tensor_names: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """Load the output of :func:`pack_state` into freshly built objects.

    Modules are loaded strictly (every key, every shape); optimisers get their tensor
    state on their parameters' devices; generators are restored exactly.

    Args:
        tensors: the named tensors (e.g. from a safetensors file).
        meta: the JSON metadata.
        modules, optimizers, schedulers, generators: the objects to load into, by the
            names they were saved under.
        tensor_names: loose tensors to return.

    Returns:
        name → loose tensor, for ``tensor_names``.

    Raises:
        StateError: a name is missing from the saved state (named).
        ValueError: a tensor has the wrong shape (named, with both shapes).
    """
    for name, module in (modules or {}).items():
        expected = module.state_dict()
        prefix = f"module.{name}."
        loaded = {}
        optional = _optional_keys(module)
        for key, value in expected.items():
            if prefix + key not in tensors and key in optional:
                loaded[key] = value  # a buffer added after the snapshot was written: keep its default
                continue
            saved = _take(tensors, prefix + key)
            if saved.shape != value.shape:
                msg = f"saved tensor {prefix + key!r} has shape {tuple(saved.shape)}, the model expects {tuple(value.shape)}"
                raise ValueError(msg)
            loaded[key] = saved
        extra = sorted(k[len(prefix):] for k in tensors if k.startswith(prefix) and k[len(prefix):] not in expected)
        if extra:
            msg = f"saved state of module {name!r} has tensors the model lacks: {extra[:5]}"
            raise ValueError(msg)
        module.load_state_dict(loaded, strict=True)
    optimizer_meta = meta.get("optimizers", {})
    for name, optimizer in (optimizers or {}).items():
        if name not in optimizer_meta:
            msg = f"saved state lacks optimizer {name!r} (have {sorted(optimizer_meta)})"
            raise StateError(msg)
        saved_meta = optimizer_meta[name]
        current = optimizer.state_dict()
        if len(saved_meta["param_groups"]) != len(current["param_groups"]):
            msg = f"optimizer {name!r}: saved {len(saved_meta['param_groups'])} param groups, model has {len(current['param_groups'])}"
            raise ValueError(msg)
        groups = []
        for saved_group, group in zip(saved_meta["param_groups"], current["param_groups"], strict=True):
            merged = dict(saved_group)
            merged["params"] = group["params"]
            for key, value in group.items():  # tuples (betas) come back from JSON as lists
                if isinstance(value, tuple) and key in merged:
                    merged[key] = tuple(merged[key])
            groups.append(merged)
        state: dict[int, dict[str, Any]] = {}
        prefix = f"optim.{name}."
        indices = {int(k[len(prefix):].split(".", 1)[0]) for k in tensors if k.startswith(prefix)}
        indices |= {int(i) for i in saved_meta.get("scalars", {})}
        for index in sorted(indices):
            entry: dict[str, Any] = dict(saved_meta.get("scalars", {}).get(str(index), {}))
            for key in [k for k in tensors if k.startswith(f"{prefix}{index}.")]:
                entry[key[len(f"{prefix}{index}."):]] = tensors[key].clone()
            state[index] = entry
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler_meta = meta.get("schedulers", {})
    for name, scheduler in (schedulers or {}).items():
        if name not in scheduler_meta:
            msg = f"saved state lacks scheduler {name!r} (have {sorted(scheduler_meta)})"
            raise StateError(msg)
        scheduler.load_state_dict(dict(scheduler_meta[name]))
    for name, generator in (generators or {}).items():
        generator.set_state(_take(tensors, f"gen.{name}").to("cpu", torch.uint8))
    return {name: _take(tensors, f"tensor.{name}") for name in tensor_names}
