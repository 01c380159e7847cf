"""Which snapshot directories form one ensemble, and which are points of a time series.

Several directories given together are either

* **shards of one ensemble**: trainer processes in separate consumer groups each see
  every event and train their share of the members (DESIGN.md, "Transports"). Their
  manifests have the same ``config``, ``model_kind`` and ``events_seen`` and differ in the
  member seed (``hyperparameters.seed``) or ``shard`` entry. Their members are pooled into
  one ensemble (histograms concatenated; normalisation unchanged, since every shard saw
  the same events); or
* **snapshots of one run at different times** (different ``events_seen``): each is
  analysed alone and the results form a curve of significance versus events seen.

:func:`group_snapshots` sorts the directories into such groups.

Shards are pooled only if they trained on **one data stream**: their manifests' data
identity (``manifest["data_identity"]["id"]``, a hash of the source spec, the resolved
source seed and the generator options) must agree. Manifests written before the data
identity was recorded fall back to the configuration's ``source`` section and top-level
``seed`` (the seed the embedded toy source takes; ignored for ``kafka:`` sources, whose
shards legitimately differ in seed). Directories that would otherwise be
shards but saw different data are refused with a message naming both (two runs with
``--seed 1`` and ``--seed 2`` are two experiments, not one ensemble).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from offline.bumphunt.errors import BumpHuntError

__all__ = ["data_identity", "group_snapshots", "member_identity", "shard_key"]


# Settings that legitimately differ between the shards of one ensemble: each shard has its
# own member seed, consumer group and device (arXiv 2202.09375's ensemble split across
# trainer processes).
_PER_SHARD_KEYS = ("seed", "device", "kafka")


def _shared_config(config: Any) -> Any:
    if not isinstance(config, Mapping):
        return config
    shared = {k: v for k, v in config.items() if k not in _PER_SHARD_KEYS}
    model = shared.get("model")
    if isinstance(model, Mapping) and isinstance(model.get("hyperparameters"), Mapping):
        hyper = {k: v for k, v in model["hyperparameters"].items() if k != "seed"}
        shared["model"] = {**model, "hyperparameters": hyper}
    return shared


def shard_key(manifest: Mapping[str, Any]) -> str:
    """What shards of one ensemble share: model kind and hyperparameters, the run
    configuration less its per-shard settings (seed, device, Kafka consumer), events seen.

    Example:
        >>> a = {"model_kind": "f", "config": {"seed": 1, "buffer": {"size": 5}}, "events_seen": 9}
        >>> b = {"model_kind": "f", "config": {"seed": 2, "buffer": {"size": 5}}, "events_seen": 9}
        >>> shard_key(a) == shard_key(b)
        True
    """
    hyper = {k: v for k, v in (manifest.get("hyperparameters") or {}).items() if k != "seed"}
    return json.dumps(
        {
            "model_kind": manifest.get("model_kind"),
            "hyperparameters": hyper,
            "config": _shared_config(manifest.get("config")),
            "events_seen": manifest.get("events_seen"),
        },
        sort_keys=True,
        default=str,
    )


def data_identity(manifest: Mapping[str, Any]) -> tuple[str, str]:
    """The data stream a snapshot was trained on, and how it is described.

    Returns:
        ``(key, description)``: the key two shards must share, and text for messages.
        With ``manifest["data_identity"]`` the key is its ``id``; without (older
        snapshots) it is the configuration's ``source`` section plus the top-level
        ``seed``.

    Example:
        >>> data_identity({"data_identity": {"source": "toy", "seed": 1, "options": {}, "id": "ab12"}})[0]
        'id:ab12'
        >>> data_identity({"config": {"seed": 2, "source": {"spec": "toy"}}})[1]
        'config source {"spec": "toy"}, seed 2'
    """
    identity = manifest.get("data_identity")
    if isinstance(identity, Mapping) and identity.get("id") is not None:
        text = (
            f"data_identity {identity.get('id')} (source {identity.get('source')!r}, "
            f"seed {identity.get('seed')!r})"
        )
        return f"id:{identity['id']}", text
    config = manifest.get("config")
    config = config if isinstance(config, Mapping) else {}
    section = config.get("source")
    source = json.dumps(section, sort_keys=True, default=str)
    spec = str(section.get("spec", "")) if isinstance(section, Mapping) else ""
    # A consumed topic is the same data whatever the trainer's seed; generators take it.
    seed = None if spec.startswith("kafka") else config.get("seed", manifest.get("seed"))
    return f"config:{source}:{seed!r}", f"config source {source}, seed {seed!r}"


def member_identity(manifest: Mapping[str, Any]) -> str:
    """What differs between shards: the member seed and the shard entry."""
    hyper = manifest.get("hyperparameters") or {}
    return json.dumps(
        {"seed": hyper.get("seed"), "shard": manifest.get("shard")}, sort_keys=True, default=str
    )


def group_snapshots(
    manifests: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None
) -> list[list[int]]:
    """Group snapshot manifests into ensembles, ordered by events seen.

    Args:
        manifests: one manifest per directory.
        names: directory names for error messages.

    Returns:
        Lists of indices into ``manifests``; each list is one ensemble (several indices:
        shards to merge), groups sorted by ``events_seen``.

    Raises:
        BumpHuntError: two directories look like the same shard (same key and seed), or
            like shards of one ensemble trained on different data (see
            :func:`data_identity`).

    Example:
        >>> a = {"config": {}, "events_seen": 10, "hyperparameters": {"seed": 1}}
        >>> b = {"config": {}, "events_seen": 10, "hyperparameters": {"seed": 2}}
        >>> c = {"config": {}, "events_seen": 20, "hyperparameters": {"seed": 1}}
        >>> group_snapshots([c, a, b])
        [[1, 2], [0]]
    """
    names = list(names) if names is not None else [str(i) for i in range(len(manifests))]
    groups: dict[str, list[int]] = {}
    for i, manifest in enumerate(manifests):
        groups.setdefault(shard_key(manifest), []).append(i)
    for members in groups.values():
        first_key, first_text = data_identity(manifests[members[0]])
        for i in members[1:]:
            key, text = data_identity(manifests[i])
            if key != first_key:
                msg = (
                    f"snapshots {names[members[0]]!r} and {names[i]!r} look like shards of one ensemble "
                    f"but were trained on different data ({first_text} vs {text}); only shards of one "
                    f"data stream are pooled: analyse them one at a time"
                )
                raise BumpHuntError(msg)
        seen: dict[str, int] = {}
        for i in members:
            ident = member_identity(manifests[i])
            if ident in seen:
                msg = (
                    f"snapshots {names[seen[ident]]!r} and {names[i]!r} have the same configuration, events seen "
                    f"and member seed: the same shard given twice?"
                )
                raise BumpHuntError(msg)
            seen[ident] = i
    return sorted(
        groups.values(), key=lambda idx: (manifests[idx[0]].get("events_seen") or 0, idx[0])
    )
