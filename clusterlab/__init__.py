"""clusterlab: k-means and mean shift from NumPy loops to GPU kernels.

The kernels behind the clusterlab course. ``import clusterlab`` is cheap: it imports
NumPy and the algorithms' entry points; torch, matplotlib, scikit-learn, pykeops, faiss
and ipywidgets are imported only when something needs them.

>>> import clusterlab as cl
>>> x, y, centers = cl.data.make_six_blobs(seed=0)
>>> res = cl.kmeans(x, 6, seed=0)
"""

from __future__ import annotations

import importlib

from clusterlab.kmeans import (
    KMeansResult,
    assign,
    kmeans,
    kmeans_plusplus,
    minibatch_kmeans,
    soft_kmeans,
)
from clusterlab.meanshift import MeanShiftResult, estimate_bandwidth, meanshift

__version__ = "0.1.0"

__all__ = [
    "KMeans",
    "KMeansResult",
    "MeanShift",
    "MeanShiftResult",
    "assign",
    "estimate_bandwidth",
    "kmeans",
    "kmeans_plusplus",
    "meanshift",
    "minibatch_kmeans",
    "soft_kmeans",
    "data",
    "device",
    "plotting",
    "widgets",
]

_SUBMODULES = {"data", "device", "plotting", "widgets", "engines", "ladder", "bench", "checks"}
#: Names that load a submodule (and scikit-learn with it) on first use.
_LAZY = {"KMeans": "estimators", "MeanShift": "estimators"}


def __getattr__(name):
    # Submodules load on first use (cl.data, cl.plotting, ...), and so do the scikit-learn
    # estimators (cl.KMeans, cl.MeanShift), keeping import light.
    if name in _SUBMODULES:
        return importlib.import_module(f"clusterlab.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(f"clusterlab.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'clusterlab' has no attribute {name!r}")
