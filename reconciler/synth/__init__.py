"""Synthetic worlds: contract-conformant partner feeds and registry, with their ground truth.

``generate_world(WorldSpec(...))`` plans a world; ``write_world(world, inbox, truth_dir)``
writes the inbox (``shared/contracts/feeds.md``) and the truth that
:func:`reconciler.evaluate.evaluate` scores against. Command line:
``python -m reconciler.synth.world --workers 100000 --inbox var/inbox --truth var/truth``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.synth.world import (
        RULES,
        NoiseRates,
        SignRates,
        World,
        WorldSpec,
        WorldSummary,
        generate_world,
        write_world,
    )

__all__ = ["RULES", "NoiseRates", "SignRates", "World", "WorldSpec", "WorldSummary",
           "generate_world", "write_world"]


def __getattr__(name: str) -> Any:
    # imported lazily so that ``python -m reconciler.synth.world`` runs the module once
    if name in __all__:
        return getattr(importlib.import_module("reconciler.synth.world"), name)
    raise AttributeError(name)
