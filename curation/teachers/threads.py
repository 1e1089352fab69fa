"""How many CPU threads a model may use: one rule for every process that runs one.

Generation (transformers, llama.cpp), training (``training.ml``) and evaluation (``evaluation.harness``)
all call :func:`apply_model_threads` before the model runs. No Django, no torch at import.

The rule: an explicit setting (a teacher's ``threads``, a config's ``threads``), else
``$DISTILLERY_MODEL_THREADS``, else the number of *physical* cores this process may run on — and never
more than that. Hyper-threads and oversubscription both hurt here: on 2 busy cores, 2 torch threads ran the
demo teacher at ~1.7 tokens/s and 1 thread at ~9 (FACTS.md); torch's own default counts logical CPUs.
"""

from __future__ import annotations

import os

ENV_VAR = "DISTILLERY_MODEL_THREADS"


def physical_cores() -> int:
    """Physical cores among the CPUs this process is allowed to use (cgroup/affinity aware)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS/Windows have no affinity call
        allowed = os.cpu_count() or 1
    try:
        import psutil  # a dependency of accelerate, so always present where a model runs

        physical = psutil.cpu_count(logical=False) or allowed
        logical = psutil.cpu_count(logical=True) or allowed
    except ImportError:
        physical = logical = os.cpu_count() or 1
    # With SMT, a process allowed `allowed` logical CPUs sits on about allowed * physical / logical cores.
    return max(1, min(physical, round(allowed * physical / logical)))


def model_threads(requested: int | str | None = None, *, processes: int = 1) -> int:
    """Threads for one model: the setting if given, else the environment, else the physical cores; capped.

    ``processes`` is how many model processes share this machine (``LOCAL_WORLD_SIZE`` under accelerate):
    each gets its share of the cores, so together they never oversubscribe.
    """
    cores = max(1, physical_cores() // max(1, processes))
    for value in (requested, os.environ.get(ENV_VAR)):
        if value in (None, "", 0, "0"):
            continue
        try:
            wanted = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"threads must be a whole number, got {value!r}") from None
        if wanted < 1:
            raise ValueError(f"threads must be at least 1, got {wanted}")
        return min(wanted, cores)
    return cores


def apply_model_threads(requested: int | str | None = None, *, processes: int = 1) -> int:
    """Set torch's intra-op threads (and the OpenMP/MKL variables children inherit); return the number."""
    threads = model_threads(requested, processes=processes)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        import torch
    except ImportError:  # llama.cpp alone needs no torch
        return threads
    torch.set_num_threads(threads)
    try:
        # Inter-op threads can only be set before torch starts parallel work; later calls raise.
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return threads
