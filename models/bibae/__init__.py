"""BIB-AE calorimeter shower generator (arXiv 2005.05334, 2112.09709, 2102.12491).

Contract: :class:`BIBAE` (kind ``"bibae"``) implements :class:`models.protocol.OnlineModel`
on sparse shower buffers (:mod:`models.shower_data`); it imports nothing from ``stream``
or ``emulator``. Its settings are :class:`BIBAEConfig` with the presets ``full``,
``small`` and ``pion`` (:data:`PRESETS`). ``BIBAE.sample(n, seed=..., condition=
{"incident_energy": ...}, mode="normal" | "kde", post_process=...)`` returns showers in
MeV on the modelled grid. One network, loss or sampler per module: ``encoder``,
``decoder``, ``critic``, ``latent_critic``, ``post_processor``, ``losses``, ``kde``,
``presets``, ``model``.
"""

from __future__ import annotations

from models.bibae.model import BIBAE, STAGES
from models.bibae.presets import PRESETS, BIBAEConfig, preset

__all__ = ["BIBAE", "PRESETS", "STAGES", "BIBAEConfig", "preset"]
