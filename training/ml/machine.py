"""How many torch threads a process that runs a model should use.

Measured here (FACTS): on 2 busy cores, 2 torch threads ran the teacher at ~1.7 tokens/s and 1 thread at ~9,
and an evaluation batch took 255 s instead of 25 s. torch's default (every logical CPU) spins against itself
when hyper-threads or other processes share the cores, so every process that runs a model calls
`configure_threads` first: physical cores by default, `DISTILLERY_TORCH_THREADS` (the setting) when set.
"""

from __future__ import annotations

import os

THREADS_ENV = "DISTILLERY_TORCH_THREADS"


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads do not count; a CPU affinity mask does)."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or 0
        logical = psutil.cpu_count(logical=True) or 0
    except ImportError:  # psutil arrives with accelerate; without it, assume no hyper-threading
        physical = logical = os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    if physical and logical and allowed < logical:
        # An affinity mask (taskset, a container's cpuset) keeps a share of the logical CPUs.
        physical = max(1, round(physical * allowed / logical))
    return max(1, physical or allowed or 1)


def torch_threads(requested: int | str | None = None) -> int:
    """The thread count to use: an explicit value, else the environment setting, else physical cores."""
    value = requested if requested not in (None, "", 0, "0") else os.environ.get(THREADS_ENV, "")
    if value not in (None, ""):
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, not {value!r}") from exc
        if number >= 1:
            return number
        raise ValueError(f"{THREADS_ENV} must be a positive integer, not {value!r}")
    return physical_cores()


def configure_threads(requested: int | str | None = None) -> int:
    """Set torch's intra-op threads (and one inter-op thread) for this process; return the count used."""
    import torch

    threads = torch_threads(requested)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable before the first parallel work; intra-op is what matters
        pass
    # The environment carries it to child processes (harness models, accelerate launch).
    os.environ[THREADS_ENV] = str(threads)
    return threads
