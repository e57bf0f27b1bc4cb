"""Device choice and fair timing (d2l's ``try_gpu`` idea, written once).

torch is imported inside the functions that need it, so ``import clusterlab.device``
is cheap and :func:`format_seconds` / :func:`timeit` of NumPy code never load torch.
"""

from __future__ import annotations

import math
import numbers
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

__all__ = [
    "ENV_VAR",
    "LoadMeter",
    "Timing",
    "Transfer",
    "cpu_ticks",
    "default_device",
    "device_name",
    "format_seconds",
    "process_ticks",
    "synchronize",
    "timeit",
    "timeit_interleaved",
    "transfer_seconds",
    "usable_cpus",
]

#: Environment variable read by :func:`default_device` when ``prefer`` is None.
ENV_VAR = "CLUSTERLAB_DEVICE"
_PREFER = (None, "auto", "cpu", "cuda")
_UNITS = ((1e-9, "ns"), (1e-6, "µs"), (1e-3, "ms"), (1.0, "s"))


# --------------------------------------------------------------------------- devices


def default_device(prefer=None):
    """The device the course runs on: CUDA when available, else the CPU.

    Parameters
    ----------
    prefer : {None, "auto", "cpu", "cuda"}, default None
        ``"auto"``: CUDA if ``torch.cuda.is_available()``, else CPU.
        ``"cpu"``: always the CPU. ``"cuda"``: the GPU, and a ``RuntimeError``
        if there is none (so a notebook that needs a GPU says so plainly).
        ``None``: the value of the environment variable ``CLUSTERLAB_DEVICE``
        (read at call time; the notebook runner sets it to ``"cpu"`` so the
        committed outputs are CPU runs), or ``"auto"`` when it is unset or empty.

    Returns
    -------
    torch.device
    """
    source = "prefer"
    if prefer is None:
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env:
            prefer, source = env, f"environment variable {ENV_VAR}"
    if prefer is not None and not isinstance(prefer, str):
        raise TypeError(f"prefer must be None or one of {_PREFER[1:]}, got {prefer!r}")
    if prefer not in _PREFER:
        raise ValueError(f"{source} must be None or one of {_PREFER[1:]}, got {prefer!r}")
    import torch

    if prefer == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if prefer == "cuda":
        raise RuntimeError(
            f"{source}='cuda' but torch.cuda.is_available() is False (no GPU visible)"
        )
    return torch.device("cpu")


def _as_device(device):
    """Convert a ``str`` or ``torch.device`` to ``torch.device``, or raise."""
    import torch

    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a str, a torch.device or None, got {device!r} "
            f"({type(device).__name__})"
        )
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device is not a valid torch device string: {device!r}") from err


def _cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the platform's."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    if name:
                        return name
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device=None) -> str:
    """A human-readable name of ``device``, for reports and benchmark files.

    Parameters
    ----------
    device : str, torch.device or None, default None
        ``None`` means :func:`default_device`.

    Returns
    -------
    str
        The GPU's name (e.g. ``"NVIDIA H100 80GB HBM3"``) for CUDA devices, else
        ``"CPU: <model>, <N> threads"`` with torch's intra-op thread count.
    """
    dev = default_device() if device is None else _as_device(device)
    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "cpu":
        threads = torch.get_num_threads() or os.cpu_count() or 1
        return f"CPU: {_cpu_model()}, {threads} threads"
    return str(dev)


def synchronize(device=None) -> None:
    """Wait until all queued work on ``device`` has finished.

    Parameters
    ----------
    device : str, torch.device or None, default None
        CUDA devices: ``torch.cuda.synchronize(device)``. CPU: nothing to wait
        for. ``None``: synchronise the current CUDA device if torch has already
        been imported and CUDA initialised, else nothing (torch is not imported).
    """
    if device is None:
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return
    if isinstance(device, str) and device == "cpu":
        return  # nothing to wait for, and no reason to import torch
    dev = _as_device(device)
    if dev.type == "cuda":
        import torch

        torch.cuda.synchronize(dev)


# --------------------------------------------------------------------------- machine load


def usable_cpus() -> frozenset:
    """The CPUs this process may run on (its affinity set; all of them off Linux)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return frozenset(range(os.cpu_count() or 1))


def cpu_ticks(cpus=None) -> tuple:
    """``(busy, total)`` clock ticks of the CPUs ``cpus`` since boot, from ``/proc/stat``.

    ``busy`` counts user, nice, system, irq, softirq and steal time (steal: another
    virtual machine had the core); ``total`` adds idle and iowait. ``cpus``: CPU numbers
    (default :func:`usable_cpus`). Raises ``OSError`` where there is no ``/proc/stat``.
    """
    cpus = usable_cpus() if cpus is None else cpus
    busy = total = 0
    with open("/proc/stat", "rb") as f:
        for line in f:
            if not line.startswith(b"cpu"):
                break
            name, *vals = line.split()
            if name == b"cpu" or int(name[3:]) not in cpus:
                continue
            v = [int(a) for a in vals[:8]]  # user nice system idle iowait irq softirq steal
            busy += sum(v) - v[3] - v[4]
            total += sum(v)
    return busy, total


def process_ticks(pid="self") -> int:
    """Clock ticks process ``pid`` (all its threads) has run, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


class LoadMeter:
    """How busy the CPUs were between :meth:`start` and :meth:`stop`, and with whose work.

    Over the CPUs this process may run on: ``cpus``, the busy CPUs of this process
    (``own``), of the processes ``pids`` (e.g. a benchmark's background load) and of
    everything else (``others``), averaged over the span, plus the load averages at both
    ends. Linux only (``/proc``); elsewhere :meth:`stop` gives ``None`` for the CPU
    figures.
    """

    def __init__(self, pids=()):
        self.pids = list(pids)
        self._start = None

    def _sample(self):
        try:
            busy, total = cpu_ticks()
            own = process_ticks()
        except (OSError, ValueError, IndexError):
            return None
        theirs = {}
        for p in self.pids:
            try:
                theirs[p] = process_ticks(p)
            except (OSError, ValueError, IndexError):  # gone already
                pass
        return busy, total, own, theirs

    def start(self):
        self._loadavg = os.getloadavg() if hasattr(os, "getloadavg") else None
        self._start = self._sample()
        return self

    def stop(self) -> dict:
        """``{"cpus", "own_busy_cpus", "background_busy_cpus", "other_busy_cpus",
        "loadavg_start", "loadavg_end"}`` (busy CPUs rounded to 0.01)."""
        end = self._sample()
        out = {"cpus": len(usable_cpus()), "own_busy_cpus": None, "background_busy_cpus": None,
               "other_busy_cpus": None,
               "loadavg_start": [round(v, 2) for v in self._loadavg] if self._loadavg else None,
               "loadavg_end": ([round(v, 2) for v in os.getloadavg()]
                               if hasattr(os, "getloadavg") else None)}
        if self._start is None or end is None or end[1] <= self._start[1]:
            return out
        per_cpu = (end[1] - self._start[1]) / out["cpus"]  # ticks of one CPU over the span
        own = end[2] - self._start[2]
        theirs = sum(end[3][p] - t for p, t in self._start[3].items() if p in end[3])
        busy = end[0] - self._start[0]
        out["own_busy_cpus"] = round(own / per_cpu, 2)
        out["background_busy_cpus"] = round(theirs / per_cpu, 2)
        out["other_busy_cpus"] = round(max(0.0, busy - own - theirs) / per_cpu, 2)
        return out


# --------------------------------------------------------------------------- timing


def _unit(s: float) -> tuple[float, str]:
    """The (scale, unit) that prints ``s`` seconds with 1 to 3 integer digits."""
    for scale, unit in _UNITS:
        if float(f"{s / scale:.3g}") < 1000:
            return scale, unit
    return _UNITS[-1]


def _fmt_value(v: float) -> str:
    """``v`` with three significant digits, without exponent up to 999."""
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def format_seconds(s) -> str:
    """Format a duration with three significant digits and a fitting unit.

    Parameters
    ----------
    s : float
        Seconds, finite and ``>= 0``.

    Returns
    -------
    str
        E.g. ``"850 ns"``, ``"12.3 µs"``, ``"4.56 ms"``, ``"1.23 s"``; ``"0 s"``
        for zero.

    Examples
    --------
    >>> format_seconds(0.00456)
    '4.56 ms'
    """
    if isinstance(s, bool) or not isinstance(s, numbers.Real):
        raise TypeError(f"s must be a real number of seconds, got {s!r}")
    s = float(s)
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"s must be finite and >= 0, got {s}")
    if s == 0:
        return "0 s"
    if s >= 1000:
        return f"{s:.0f} s"
    scale, unit = _unit(s)
    return f"{_fmt_value(float(f'{s / scale:.3g}'))} {unit}"


@dataclass(frozen=True)
class Timing:
    """The result of :func:`timeit`.

    Attributes
    ----------
    median : float
        Median of ``times`` in seconds.
    times : tuple of float
        The ``repeat`` timed calls, in seconds, in call order.
    first : float
        The first call in seconds (a warm-up call when ``warmup >= 1``): this is
        where compile or cache-filling cost shows.
    repeat : int
        Number of timed calls.
    """

    median: float
    times: tuple
    first: float
    repeat: int

    @property
    def std(self) -> float:
        """Population standard deviation of ``times`` in seconds."""
        return statistics.pstdev(self.times) if len(self.times) > 1 else 0.0

    @property
    def min(self) -> float:
        """Fastest timed call in seconds."""
        return min(self.times)

    def __str__(self) -> str:
        if self.median <= 0:
            return f"{format_seconds(max(self.median, 0.0))} (median of {self.repeat})"
        scale, unit = _unit(self.median)
        spread = self.std / scale
        spread_txt = f"{spread:.0f}" if spread >= 10 else f"{spread:.2g}"
        return (
            f"{_fmt_value(float(f'{self.median / scale:.3g}'))} {unit} ± {spread_txt} {unit} "
            f"(median of {self.repeat})"
        )


def timeit(fn, *, repeat=5, warmup=1, device=None) -> Timing:
    """Time ``fn()`` fairly: warm up first, synchronise the device around each call.

    ``fn`` is called ``warmup`` times untimed-for-the-median (the first of those
    calls is timed and kept as ``first``), then ``repeat`` times, each call
    bracketed by ``synchronize(device)`` and ``time.perf_counter()``.

    Parameters
    ----------
    fn : callable
        Called with no arguments; its result is discarded.
    repeat : int, default 5
        Number of timed calls, ``>= 1``.
    warmup : int, default 1
        Number of warm-up calls, ``>= 0``. With 0, ``first`` is the first timed
        call.
    device : str, torch.device or None, default None
        Device to synchronise (see :func:`synchronize`).

    Returns
    -------
    Timing
    """
    return timeit_interleaved({"fn": (fn, device)}, repeat=repeat, warmup=warmup)["fn"]


def timeit_interleaved(fns, *, repeat=5, warmup=1) -> dict:
    """Time several functions in alternation, so that all see the same machine.

    On a shared or busy machine the speed drifts over seconds (other processes, another
    virtual machine on the same cores). Timing A five times and then B five times
    would charge that drift to one of them; here every round times each function once,
    the order rotated from round to round, and each gets the median of its rounds.

    Parameters
    ----------
    fns : dict
        ``name -> fn`` or ``name -> (fn, device)``: callables with no arguments and
        the device each must be synchronised on (see :func:`synchronize`).
    repeat : int, default 5
        Timed rounds, ``>= 1``.
    warmup : int, default 1
        Untimed-for-the-median calls of each function before the rounds (the first
        is kept as ``first``), ``>= 0``.

    Returns
    -------
    dict
        ``name -> Timing``, in the order of ``fns``.
    """
    if not isinstance(fns, dict) or not fns:
        raise TypeError(f"fns must be a non-empty dict of name -> callable, got {fns!r}")
    for name, value, minimum in (("repeat", repeat, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    calls = {}
    for key, item in fns.items():
        fn, device = item if isinstance(item, tuple) else (item, None)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r} (for {key!r})")
        if device is not None and not (isinstance(device, str) and device == "cpu"):
            device = _as_device(device)  # fail early on a bad device, not inside the loop
        calls[key] = (fn, device)

    def timed_call(key) -> float:
        fn, device = calls[key]
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        return time.perf_counter() - t0

    keys = list(calls)
    first = {key: None for key in keys}
    for key in keys:
        for i in range(int(warmup)):
            t = timed_call(key)
            if i == 0:
                first[key] = t
    times = {key: [] for key in keys}
    for r in range(int(repeat)):
        for j in range(len(keys)):
            key = keys[(r + j) % len(keys)]
            times[key].append(timed_call(key))
    return {
        key: Timing(
            median=float(statistics.median(times[key])),
            times=tuple(times[key]),
            first=times[key][0] if first[key] is None else first[key],
            repeat=int(repeat),
        )
        for key in keys
    }


# --------------------------------------------------------------------------- transfers


@dataclass(frozen=True)
class Transfer:
    """The result of :func:`transfer_seconds`: one copy of a tensor, timed.

    Attributes
    ----------
    timing : Timing
        The copies, timed as by :func:`timeit` (synchronised, warmed up).
    nbytes : int
        Bytes copied by one call.
    source, target : str
        The devices, e.g. ``"cpu"`` and ``"cuda:0"``.
    pinned : bool
        Whether the host side was page-locked ("pinned") memory.
    """

    timing: Timing
    nbytes: int
    source: str
    target: str
    pinned: bool

    @property
    def bandwidth(self) -> float:
        """Bytes per second of the median copy."""
        return self.nbytes / self.timing.median if self.timing.median > 0 else math.inf

    def __str__(self) -> str:
        size = self.nbytes / 2**20
        pinned = ", pinned" if self.pinned else ""
        return (
            f"{size:.3g} MiB {self.source} -> {self.target}{pinned}: {self.timing} "
            f"= {self.bandwidth / 1e9:.3g} GB/s"
        )


def transfer_seconds(x, device, *, repeat=5, warmup=1, pinned=False) -> Transfer:
    """Time copying the tensor ``x`` to ``device`` (into a buffer allocated there once).

    Every call is a real copy (also when ``x`` is already on ``device``: then it is a copy
    within that memory, e.g. a host ``memcpy``), bracketed by synchronisations of the CUDA
    device involved, after ``warmup`` untimed calls (the first CUDA copy also pays for
    setting up the context and the caching allocator).

    Parameters
    ----------
    x : torch.Tensor
        Any shape and dtype; ``x.numel() * x.element_size()`` bytes are copied.
    device : str or torch.device
        Where to copy it.
    repeat, warmup : int
        As for :func:`timeit`.
    pinned : bool, default False
        Copy from (or to) page-locked host memory: CUDA's DMA engines read it directly,
        so host-to-GPU copies run at the bus's speed. Needs CUDA; ignored when no CUDA
        device takes part.

    Returns
    -------
    Transfer
        ``timing``, ``nbytes``, ``source``, ``target``, ``pinned`` and ``bandwidth``.
    """
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(pinned, bool):
        raise TypeError(f"pinned must be a bool, got {pinned!r}")
    target = _as_device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine")
    cuda = next((d for d in (x.device, target) if d.type == "cuda"), None)
    pinned = pinned and cuda is not None
    if pinned and x.device.type == "cpu":
        x = x.pin_memory()
    # The destination is allocated once: a fresh buffer per call would time the allocator
    # and the first touch of new pages (page faults), not the copy.
    out = torch.empty(
        x.shape, dtype=x.dtype, device=target, pin_memory=pinned and target.type == "cpu"
    )

    def copy():
        return out.copy_(x)

    timing = timeit(copy, repeat=repeat, warmup=warmup, device=cuda)
    return Transfer(timing, x.numel() * x.element_size(), str(x.device), str(target), pinned)
