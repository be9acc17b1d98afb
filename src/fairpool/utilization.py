"""For training code: tell fairpool how busy this worker's GPUs are.

fairpool reads real GPUs through NVML by itself. On simulated GPUs (``fairpool up
--simulate-gpus``), or to override what NVML cannot attribute, a worker may report its own
utilisation; fairpool labels such readings simulated::

    import fairpool
    fairpool.report_utilization(0.85)   # 0..1, call it every few seconds
"""

from __future__ import annotations

import json
import os
import time


def report_utilization(util: float, memory_mib: int | None = None) -> bool:
    """Record ``util`` (0..1) for this worker; False when not running under fairpool."""
    if not 0.0 <= util <= 1.0:
        raise ValueError("utilisation is a fraction between 0 and 1")
    path = os.environ.get("FAIRPOOL_UTIL_FILE")
    if not path:
        return False
    body = {"util": util, "at": time.time()}
    if memory_mib is not None:
        body["memory_mib"] = memory_mib
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(body, f)
        os.replace(tmp, path)  # readers never see half a file
    except OSError:
        return False
    return True
