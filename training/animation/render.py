"""Front-view renders of vertex sequences of any mesh (FLAME, BIWI, the synthetic face): PNG frame grids and GIFs.

With triangles (`mesh.obj` next to the data, or any OBJ) the mesh is drawn as shaded polygons sorted by depth;
without, as a point cloud coloured by depth. Lip vertices, when known, are marked. Meant for looking at results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_obj_faces(path: str | Path) -> np.ndarray:
    """Triangles `(F, 3)` (0-based) of a Wavefront OBJ; polygons are fanned into triangles."""
    triangles = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("f "):
            corners = [int(token.split("/")[0]) - 1 for token in line.split()[1:]]
            triangles += [(corners[0], corners[i], corners[i + 1]) for i in range(1, len(corners) - 1)]
    if not triangles:
        raise ValueError(f"{path} has no faces.")
    return np.asarray(triangles, dtype=np.int64)


def _draw(ax, vertices: np.ndarray, faces: np.ndarray | None, lips: np.ndarray | None, limits, title: str):
    from matplotlib.collections import PolyCollection

    ax.set_facecolor("#f4f4f4")
    if faces is not None:
        triangles = vertices[faces]  # (F, 3, 3)
        normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        shade = 0.35 + 0.65 * np.abs(normals[:, 2])
        order = np.argsort(triangles[:, :, 2].mean(1))
        colors = np.clip(shade[order, None] * np.array([0.9, 0.75, 0.66]), 0, 1)
        ax.add_collection(PolyCollection(triangles[order, :, :2], facecolors=colors, edgecolors="none"))
    else:
        ax.scatter(vertices[:, 0], vertices[:, 1], c=vertices[:, 2], s=2, cmap="copper", linewidths=0)
    if lips is not None:
        ax.scatter(vertices[lips, 0], vertices[lips, 1], s=3, c="#b03030", linewidths=0)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def _limits(sequences: list[np.ndarray]) -> tuple:
    points = np.concatenate([s.reshape(-1, 3) for s in sequences])
    low, high = points.min(0), points.max(0)
    pad = 0.04 * (high - low).max()
    return (low[0] - pad, high[0] + pad), (low[1] - pad, high[1] + pad)


def evenly_spaced_frames(length: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over a sequence of `length` frames, first and last included."""
    return [round(i * (length - 1) / max(count - 1, 1)) for i in range(count)]


def as_frames(sequence: np.ndarray) -> np.ndarray:
    """`(T, V*3)` or `(T, V, 3)` -> `(T, V, 3)` float64."""
    sequence = np.asarray(sequence, dtype=np.float64)
    return sequence.reshape(sequence.shape[0], -1, 3)


def render_frames_png(
    path: str | Path,
    rows: dict[str, np.ndarray],
    frame_indices: list[int],
    faces: np.ndarray | None = None,
    lips: np.ndarray | None = None,
    fps: float = 30.0,
    dpi: int = 90,
) -> Path:
    """A grid: one row per labelled sequence (e.g. ground truth, prediction), one column per frame index."""
    plt = _pyplot()
    sequences = {label: as_frames(seq) for label, seq in rows.items()}
    limits = _limits(list(sequences.values()))
    fig, axes = plt.subplots(len(sequences), len(frame_indices), figsize=(2.0 * len(frame_indices), 2.2 * len(sequences)), squeeze=False)
    for r, (label, sequence) in enumerate(sequences.items()):
        for c, frame in enumerate(frame_indices):
            frame = min(frame, len(sequence) - 1)
            _draw(axes[r, c], sequence[frame], faces, lips, limits, f"{label} t={frame / fps:.2f}s")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def render_gif(
    path: str | Path,
    rows: dict[str, np.ndarray],
    fps: float,
    faces: np.ndarray | None = None,
    lips: np.ndarray | None = None,
    max_frames: int = 150,
    dpi: int = 60,
) -> Path:
    """An animated GIF with the labelled sequences side by side (every n-th frame so at most `max_frames`)."""
    plt = _pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    sequences = {label: as_frames(seq) for label, seq in rows.items()}
    limits = _limits(list(sequences.values()))
    length = min(len(s) for s in sequences.values())
    step = max(1, -(-length // max_frames))
    fig, axes = plt.subplots(1, len(sequences), figsize=(2.4 * len(sequences), 2.6), squeeze=False)

    def update(index):
        for ax, (label, sequence) in zip(axes[0], sequences.items()):
            ax.clear()
            _draw(ax, sequence[index * step], faces, lips, limits, f"{label} {index * step / fps:.2f}s")
        return []

    animation = FuncAnimation(fig, update, frames=-(-length // step), blit=False)
    animation.save(str(path), writer=PillowWriter(fps=fps / step), dpi=dpi)
    plt.close(fig)
    return Path(path)
