"""Settings for a process that moves many leads (an import or export) and then exits."""

from __future__ import annotations

import gc


def quiet_gc() -> None:
    """Make the cyclic garbage collector rare: rows and lead objects hold no cycles
    (reference counting frees them), yet allocating them set off collections that rescanned
    every long-lived object, measured at a tenth of an import's time."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
