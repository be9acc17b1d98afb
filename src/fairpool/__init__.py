"""fairpool: a GPU pool orchestrator (hierarchical quotas, fair share, gangs, fractional GPUs).

The package is layered (dependencies point downward only): ``domain`` (pure dataclasses) and
``scheduler`` (the pure scheduling core: snapshot in, plan out) import nothing from the layers
that do I/O.
"""

__version__ = "0.1.0"

from fairpool.utilization import report_utilization

__all__ = ["__version__", "report_utilization"]
