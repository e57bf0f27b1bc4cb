"""Re-execute the course notebooks in place, top to bottom, on the CPU.

Usage (from the repository root, normally through ``make notebooks``)::

    .venv/bin/python scripts/run_notebooks.py                 # every notebooks/*.ipynb
    .venv/bin/python scripts/run_notebooks.py notebooks/02_*.ipynb

The committed outputs are CPU runs: ``CLUSTERLAB_DEVICE=cpu`` is set for the kernel.
The kernel is always the interpreter running this script (the project's ``.venv``),
never a ``python3`` kernelspec registered elsewhere on the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import ipykernel.kernelspec
import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets import default

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "python3"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CELL_TIMEOUT = 600  # seconds, per cell
ENV = {"KEOPS_VERBOSE": "0", "PYKEOPS_VERBOSE": "0", "CLUSTERLAB_DEVICE": "cpu"}


class ThisPythonKernelSpecManager(KernelSpecManager):
    """Resolve ``python3`` to ipykernel's native spec for ``sys.executable``."""

    def get_kernel_spec(self, kernel_name):
        if kernel_name == KERNEL_NAME:
            return self.kernel_spec_class(
                resource_dir=ipykernel.kernelspec.RESOURCES,
                **ipykernel.kernelspec.get_kernel_dict(),
            )
        raise NoSuchKernel(kernel_name)


class ThisPythonKernelManager(AsyncKernelManager):
    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self):
        return ThisPythonKernelSpecManager(data_dir=self.data_dir)


def strip_noise(nb: nbformat.NotebookNode) -> None:
    """Set the course kernelspec and drop per-run metadata (timings, collapsed flags)."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # nbclient's iopub/shell timestamps
        cell.metadata.pop("ExecuteTime", None)  # the ExecuteTime extension
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)


def run_one(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    strip_noise(nb)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL_NAME,
        kernel_manager_class=ThisPythonKernelManager,
        record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    start = time.perf_counter()
    client.execute(stderr=subprocess.DEVNULL)  # C-level stderr is in the outputs already
    elapsed = time.perf_counter() - start
    strip_noise(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    os.environ.update(ENV)
    # a non-interactive backend (MPLBACKEND=Agg, as in `make test`) would make plt.show() a
    # no-op in the kernel, and the stored notebooks would lose their figures
    os.environ.pop("MPLBACKEND", None)
    paths = [Path(a).resolve() for a in argv] or sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {NOTEBOOKS}")
        return 0
    print(f"kernel: {sys.executable}")
    failed = []
    total = 0.0
    for path in paths:
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"{name} ...", end=" ", flush=True)
        try:
            elapsed = run_one(path)
        except CellExecutionError as exc:
            print("FAILED (notebook left unchanged)")
            print(exc, file=sys.stderr)
            failed.append(name)
            continue
        total += elapsed
        print(f"{elapsed:.1f} s")
    print(f"total {total:.1f} s for {len(paths) - len(failed)} notebook(s)")
    if failed:
        print("failed: " + ", ".join(map(str, failed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
