"""Vertex-region files: comma-separated integer vertex indices.

Public sets disagree on the separator: some write ``1, 2, 3`` and some ``1,2,3``; loaders must
accept both (and tolerate newlines and a trailing comma). :func:`read_region` does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

LIP_FILE = "regions/lip_vertices.txt"  # lip vertices, used by LVE
UPPER_FACE_FILE = "regions/upper_face_vertices.txt"  # forehead / brows / eyes, used by FDD


def write_region(path: str | Path, indices: Iterable[int], sep: str = ", ") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sep.join(str(int(i)) for i in indices) + "\n", encoding="utf-8")


def read_region(path: str | Path) -> np.ndarray:
    """Parse a region file written with ``", "`` or ``","`` (any whitespace / newlines around commas)."""
    text = Path(path).read_text(encoding="utf-8").strip()
    if not text:
        return np.zeros(0, dtype=np.int64)
    tokens = [t for t in re.split(r"[,\s]+", text) if t]
    try:
        return np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError as e:
        raise ValueError(f"{path}: not a list of integers ({e})") from None
