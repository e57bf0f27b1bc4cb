"""The KeOps engine: symbolic (N, K) matrices that are never stored, on CPU or CUDA.

KeOps (``pykeops``) compiles each formula once (g++ on the CPU, nvrtc on a GPU) and
caches it in ``KEOPS_CACHE_FOLDER``; later calls only run. The engine reuses the torch
engine for everything that is O(n) (sums per cluster, norms, sampling) and replaces the
two O(n k) kernels: the nearest-centroid argmin and the kernel-weighted mean of mean
shift. Both compute ``||x_i - c_j||^2`` directly in registers, so they need neither
chunking nor the ``||x||^2 - 2 x.c + ||c||^2`` expansion.

A KeOps formula can kill Python outright: on an H200 (CUDA 13.0, driver 580) pykeops 2.3's
first GPU formula segfaults inside nvrtc's code generation (KeOps issues #330 and #398), and
a segfault cannot be caught. :func:`keops_probe` therefore runs a tiny formula in a child
process first, once per device, and says why KeOps is skipped when the child dies.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import torch

from clusterlab.engines.torch_engine import TorchEngine

INSTALL_HINT = "pip install pykeops==2.3 (and a C++ compiler, g++, for its CPU mode)"


def import_keops():
    """Import ``pykeops.torch.LazyTensor`` quietly, or raise an ImportError saying what to install."""
    # Both variables must be set before pykeops is first imported to silence compile logs.
    os.environ.setdefault("KEOPS_VERBOSE", "0")
    os.environ.setdefault("PYKEOPS_VERBOSE", "0")
    try:
        from pykeops.torch import LazyTensor
    except ImportError as exc:
        raise ImportError(f"backend='keops' needs pykeops: {INSTALL_HINT}") from exc
    return LazyTensor


PROBE_TIMEOUT = 300.0
"""Seconds the probe's child may take: a first compile is 6-8 s per formula on a CPU."""

# The child: the engine's two formulas on tiny float32 data with d = 2 (the shape the tests
# use, so the compiled formulas are shared through the KeOps cache), checked against torch.
# Exit 0 and the marker: it works; 3: pykeops cannot be imported; 4: wrong numbers.
_PROBE_CODE = r"""
import sys
import torch
dev = sys.argv[1]
try:
    from pykeops.torch import LazyTensor
except ImportError as exc:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(3)
g = torch.Generator().manual_seed(0)
x = torch.randn(300, 2, generator=g).to(dev)
c = torch.randn(7, 2, generator=g).to(dev)
d_ref = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
x_i = LazyTensor(x[:, None, :].contiguous())
c_j = LazyTensor(c[None, :, :].contiguous())
d_ij = ((x_i - c_j) ** 2).sum(-1)
labels = d_ij.argmin(dim=1).view(-1).long()
if not torch.allclose(d_ref.gather(1, labels[:, None])[:, 0], d_ref.min(1).values, atol=1e-5):
    print(f"argmin disagrees with torch on {dev}", file=sys.stderr)
    sys.exit(4)
y = x[:40]
y_i = LazyTensor(y[:, None, :].contiguous())
x_j = LazyTensor(x[None, :, :].contiguous())
e_ij = ((y_i - x_j) ** 2).sum(-1)
h2 = 0.5
got = (-e_ij / (2.0 * h2)).sumsoftmaxweight(x_j, dim=1)
e_ref = ((y[:, None, :] - x[None, :, :]) ** 2).sum(-1)
ref = torch.softmax(-e_ref / (2.0 * h2), dim=1) @ x
if not torch.allclose(got, ref, atol=1e-4, rtol=1e-4):
    print(f"sumsoftmaxweight disagrees with torch on {dev}", file=sys.stderr)
    sys.exit(4)
print("clusterlab-keops-probe: ok")
"""
_PROBE_OK = "clusterlab-keops-probe: ok"

_PROBED: dict[str, tuple[bool, str]] = {}  # device -> (ok, reason), for this process


def _device_name(device) -> str:
    """``"cpu"`` or ``"cuda:<index>"`` (the current device when no index is given)."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return f"cuda:{index}"
    return str(dev)


def _pykeops_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pykeops")
    except PackageNotFoundError:
        return None


def _disk_key(dev: str, keops_version: str) -> list[str]:
    """What a probe's verdict depends on: versions, the device and its driver (or compiler)."""
    key = [keops_version, torch.__version__, sys.executable, dev]
    if dev.startswith("cuda"):
        key.append(torch.cuda.get_device_name(torch.device(dev)))
        key.append(f"CUDA {torch.version.cuda}")
        try:
            key.append(Path("/proc/driver/nvidia/version").read_text().splitlines()[0])
        except (OSError, IndexError):
            key.append("driver unknown")
    else:
        key.append(platform.machine())
        key.append(os.environ.get("CXX") or shutil.which("g++") or "no g++")
    return key


def _disk_path(key: list[str]) -> Path:
    """A file in KeOps's own cache folder, so that clearing that cache clears the verdict."""
    folder = os.environ.get("KEOPS_CACHE_FOLDER") or Path.home() / ".cache" / f"keops{key[0]}"
    digest = hashlib.sha1("\n".join(key).encode()).hexdigest()[:16]
    return Path(folder) / f"clusterlab-probe-{digest}.json"


def _disk_read(key: list[str]) -> tuple[bool, str] | None:
    try:
        data = json.loads(_disk_path(key).read_text())
        if data["key"] == key:
            return bool(data["ok"]), str(data["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _disk_write(key: list[str], ok: bool, reason: str) -> None:
    path = _disk_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "ok": ok, "reason": reason}))
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
    except OSError:
        pass  # the disk cache is only a shortcut


def _run_probe(dev: str, timeout: float, code: str) -> tuple[bool, str, bool]:
    """Run the child; return (ok, reason, whether the verdict may be kept on disk)."""
    env = dict(os.environ, KEOPS_VERBOSE="0", PYKEOPS_VERBOSE="0")  # keeps KEOPS_CACHE_FOLDER
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, dev],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, (
            f"the KeOps test formula on {dev} did not finish within {timeout:g} s (a first "
            "compile takes seconds; set CLUSTERLAB_KEOPS_PROBE_TIMEOUT to wait longer)"
        ), False
    except OSError as exc:
        return False, f"could not start a KeOps test process: {exc}", False
    lines = [line.strip() for line in (proc.stderr or "").splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    rc = proc.returncode
    if rc == 0 and _PROBE_OK in (proc.stdout or ""):
        return True, f"KeOps works on {dev}", True
    if rc < 0:  # killed by a signal: a crash that would have taken this process down
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        reason = f"KeOps crashed a test process on {dev} ({name})"
        if dev.startswith("cuda"):
            reason += " \u2014 known pykeops issue with nvrtc (KeOps #330/#398)"
        return False, reason, True
    if rc == 3:
        return False, f"pykeops cannot be imported ({last}): {INSTALL_HINT}", False
    if rc == 4:
        return False, f"KeOps gives wrong numbers: {last}", True
    return False, f"KeOps failed a test formula on {dev} (exit {rc}): {last}", False


def keops_probe(device="cpu", *, timeout=None, refresh=False, _code=None) -> tuple[bool, str]:
    """Learn, in a child process, whether KeOps runs its formulas on ``device``.

    The child runs the engine's two reductions (a nearest-centroid argmin and a softmax-
    weighted sum) on tiny tensors on ``device`` and checks them against torch. A crash there
    (a segfault in KeOps's GPU compiler, KeOps issues #330 and #398) kills only the child.
    The verdict is cached for the process, per device; a verdict that does not depend on
    chance (it works, it crashed, it gave wrong numbers) is also kept on disk, in
    ``KEOPS_CACHE_FOLDER`` (else KeOps's default cache folder), keyed by the pykeops and
    torch versions, the Python, the device's name and its driver, so that the next Python
    process does not pay the probe again.

    Parameters
    ----------
    device : str or torch.device, default "cpu"
        Where to run the test formula: ``"cpu"``, ``"cuda"`` (the current GPU) or
        ``"cuda:<index>"``.
    timeout : float, optional
        Seconds the child may take (compiling included). Default: the environment variable
        ``CLUSTERLAB_KEOPS_PROBE_TIMEOUT``, else :data:`PROBE_TIMEOUT` (300 s).
    refresh : bool, default False
        Ignore both caches and probe again (the new verdict replaces the cached ones).
    _code : str, optional
        Run this Python code in the child instead of the test formula, with no caching
        (for tests: a child that crashes, hangs or cannot import pykeops).

    Returns
    -------
    ok : bool
        True when the formulas ran and gave torch's numbers.
    reason : str
        One line: what worked, or why KeOps is to be skipped on this device (the signal
        that killed the child, a timeout, what to install, or the child's last error line).
    """
    dev = _device_name(device)
    if _code is not None:
        return _run_probe(dev, _probe_timeout(timeout), _code)[:2]
    if not refresh and dev in _PROBED:
        return _PROBED[dev]
    keops_version = _pykeops_version()
    if keops_version is None:
        verdict = (False, f"pykeops is not installed: {INSTALL_HINT}")
    elif dev.startswith("cuda") and not torch.cuda.is_available():
        verdict = (False, f"no CUDA device for KeOps: torch {torch.__version__} sees none")
    else:
        key = _disk_key(dev, keops_version)
        verdict = None if refresh else _disk_read(key)
        if verdict is None:
            ok, reason, keep = _run_probe(dev, _probe_timeout(timeout), _PROBE_CODE)
            verdict = (ok, reason)
            if keep:
                _disk_write(key, ok, reason)
    _PROBED[dev] = verdict
    return verdict


def _probe_timeout(timeout) -> float:
    if timeout is None:
        timeout = os.environ.get("CLUSTERLAB_KEOPS_PROBE_TIMEOUT") or PROBE_TIMEOUT
    return float(timeout)


def keops_available(device="cpu") -> bool:
    """True when KeOps runs a test formula on ``device`` (learnt in a child process).

    Parameters
    ----------
    device : str or torch.device, default "cpu"
        The device to check; see :func:`keops_probe`, which also says why not.

    Returns
    -------
    bool
        Whether pykeops imports, compiles and gives torch's numbers there, without crashing.
    """
    return keops_probe(device)[0]


class KeopsEngine(TorchEngine):
    """Engine over torch tensors whose O(n k) kernels are KeOps reductions."""

    name = "keops"
    precisions = ("highest",)  # KeOps computes its formulas in the data's own precision

    def __init__(self, device="cpu"):
        super().__init__(device)
        self.LazyTensor = import_keops()
        if self.device.type == "cuda":
            # The GPU compiler can segfault (KeOps #330/#398): probe in a child process first.
            ok, reason = keops_probe(self.device)
            if not ok:
                raise RuntimeError(
                    f"backend='keops' cannot run on {self.device}: {reason}. "
                    "Use backend='torch' on this GPU, or KeOps on the CPU."
                )

    @torch.no_grad()
    def assign(self, x, c, *, metric="euclidean", x_sq=None, chunk_size=None, precision="highest"):
        LT = self.LazyTensor
        x_i = LT(x[:, None, :].contiguous())  # (N, 1, D) symbolic rows
        c_j = LT(c[None, :, :].contiguous())  # (1, K, D) symbolic columns
        if metric == "euclidean":
            d_ij = ((x_i - c_j) ** 2).sum(-1)  # (N, K) squared distances, never stored
        else:
            d_ij = -(x_i | c_j)  # (N, K) minus the cosines of unit rows
        labels = d_ij.argmin(dim=1).view(-1).long()  # (N,)
        nearest = c[labels]  # (N, D)
        if metric == "euclidean":
            dist = ((x - nearest) ** 2).sum(1)
        else:
            dist = (1.0 - (x * nearest).sum(1)).clamp_min_(0.0)
        return dist, labels

    @torch.no_grad()
    def shift(self, y, x, bandwidth, *, kernel="gaussian", x_sq=None, chunk_size=None,
              precision="highest"):
        LT = self.LazyTensor
        y_i = LT(y[:, None, :].contiguous())  # (M, 1, D) the moving points
        x_j = LT(x[None, :, :].contiguous())  # (1, N, D) the data
        d_ij = ((y_i - x_j) ** 2).sum(-1)  # (M, N) squared distances
        h2 = float(bandwidth) * float(bandwidth)  # inf, not OverflowError, for a huge h
        if kernel == "gaussian":
            # a stable softmax-weighted sum of the data: mean shift as attention
            return (-d_ij / (2.0 * h2)).sumsoftmaxweight(x_j, dim=1)  # (M, D)
        k_ij = (h2 - d_ij).step()  # (M, N) flat kernel: 1 inside the window
        num = (k_ij * x_j).sum(dim=1)  # (M, D)
        tot = k_ij.sum(dim=1)  # (M, 1)
        return torch.where(tot > 0, num / tot.clamp_min(1e-30), y)
