"""Front-view rendering of the procedural face with matplotlib (PNG previews and GIFs).

The renderer is an orthographic painter's algorithm: triangles sorted by depth and shaded with a
Lambert term; the mouth opening, teeth, tongue and eyes are drawn as filled polygons behind the
skin. It is meant for looking at the data, not for publication-quality images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .mesh import LIP_CONTOURS, FaceTopology, eye_loop, mouth_loop

SKIN = np.array([0.91, 0.76, 0.66])
LIPS = np.array([0.78, 0.42, 0.42])
MOUTH = "#3b1414"
TEETH = "#f4f1e8"
TONGUE = "#c9686e"
LIGHT = np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0])


def _matplotlib():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg")
        except Exception:  # pragma: no cover - backend already fixed by the caller
            pass
    import matplotlib.pyplot as plt

    return plt


def draw_face(ax, verts: np.ndarray, topo: FaceTopology, *, zoom: str | None = None, title: str | None = None,
              wire: bool = False) -> None:
    """Draw one frame (``V x 3``) on a matplotlib axis. ``zoom``: None (whole face) or "mouth"."""
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Circle, Polygon

    v = np.asarray(verts, dtype=np.float64)
    g = topo.groups
    ax.set_facecolor("#f7f7f7")

    # mouth interior: dark opening, teeth, tongue (clipped to the opening)
    loop = v[mouth_loop(topo), :2]
    opening = Polygon(loop, closed=True, facecolor=MOUTH, edgecolor="none", zorder=1)
    ax.add_patch(opening)
    items = []
    tu, tl = v[g["teeth_upper"]], v[g["teeth_lower"]]
    items.append((tu[:, 2].mean(), np.concatenate([tu[:, :2], (tu[::-1, :2] + [0, 0.007])]), TEETH))
    items.append((tl[:, 2].mean(), np.concatenate([tl[:, :2], (tl[::-1, :2] - [0, 0.007])]), TEETH))
    tg = v[g["tongue"]]
    rim = tg[[0, 1, 3, 6, 4, 2]]
    items.append((tg[0, 2] + 0.001, rim[:, :2], TONGUE))
    for _, poly, color in sorted(items, key=lambda it: it[0]):
        patch = Polygon(poly, closed=True, facecolor=color, edgecolor="#888888", linewidth=0.3, zorder=2)
        ax.add_patch(patch)
        patch.set_clip_path(opening)

    # eyes
    for s in ("r", "l"):
        el = v[eye_loop(topo, s), :2]
        eye = Polygon(el, closed=True, facecolor="#fbfbf7", edgecolor="none", zorder=1)
        ax.add_patch(eye)
        c = v[g[f"eye_corners_{s}"], :2].mean(0)
        r = 0.38 * np.abs(v[g[f"eye_corners_{s}"][0], 0] - v[g[f"eye_corners_{s}"][1], 0])
        iris = Circle(c + [0, 0.0007], r * 0.95, facecolor="#4b6a88", edgecolor="none", zorder=2)
        pupil = Circle(c + [0, 0.0007], r * 0.42, facecolor="#111111", edgecolor="none", zorder=2)
        for p in (iris, pupil):
            ax.add_patch(p)
            p.set_clip_path(eye)

    # skin and lips, back to front
    faces = topo.faces
    tri = v[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    shade = 0.5 + 0.5 * np.clip(n @ LIGHT, 0.0, 1.0)
    lip = np.zeros(topo.num_vertices, bool)
    lip[topo.group(*LIP_CONTOURS, "lip_corners")] = True
    lip_face = lip[faces].all(1)
    tongue = np.isin(faces, g["tongue"]).all(1)
    base = np.where(lip_face[:, None], LIPS[None, :], SKIN[None, :])
    colors = np.clip(base * shade[:, None], 0, 1)
    keep = ~tongue
    order = np.argsort(tri[keep, :, 2].mean(1))
    polys = tri[keep][order][:, :, :2]
    cols = colors[keep][order]
    pc = PolyCollection(polys, facecolors=cols, edgecolors=("#00000030" if wire else cols), linewidths=0.3, zorder=3)
    ax.add_collection(pc)
    for s in ("r", "l"):
        b = v[g[f"brow_{s}"], :2]
        ax.plot(b[:, 0], b[:, 1], color="#5a4030", linewidth=2.2, solid_capstyle="round", zorder=4)

    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_visible(False)
    if zoom == "mouth":
        c = v[g["lip_corners"]].mean(0)
        ax.set_xlim(c[0] - 0.036, c[0] + 0.036)
        ax.set_ylim(c[1] - 0.026, c[1] + 0.020)
    else:
        ax.set_xlim(v[:, 0].min() - 0.004, v[:, 0].max() + 0.004)
        ax.set_ylim(v[:, 1].min() - 0.004, v[:, 1].max() + 0.004)
    if title:
        ax.set_title(title, fontsize=9)


def save_frames_png(path: str | Path, frames: Sequence[np.ndarray], topo: FaceTopology,
                    titles: Sequence[str] | None = None, zoom: str | None = None, dpi: int = 90) -> None:
    plt = _matplotlib()
    n = len(frames)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.8 if zoom is None else 1.9), squeeze=False)
    for i, f in enumerate(frames):
        draw_face(axes[0, i], f, topo, zoom=zoom, title=None if titles is None else titles[i])
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def save_gif(path: str | Path, verts: np.ndarray, topo: FaceTopology, fps: float, *, step: int = 2,
             zoom: str | None = None, size: float = 2.6, dpi: int = 60, labels: Sequence[str] | None = None) -> None:
    """Animated GIF of a ``T x V x 3`` sequence (every ``step``-th frame)."""
    plt = _matplotlib()
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, ax = plt.subplots(figsize=(size, size * (1.3 if zoom is None else 0.7)))
    idx = list(range(0, len(verts), step))

    def update(i):
        ax.clear()
        draw_face(ax, verts[idx[i]], topo, zoom=zoom, title=None if labels is None else labels[idx[i]])
        return []

    anim = FuncAnimation(fig, update, frames=len(idx), blit=False)
    anim.save(str(path), writer=PillowWriter(fps=fps / step), dpi=dpi)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Preview figure.

#: Near-homophone pairs shown in the preview: (word, espeak-ng phonemes with durations, key phoneme index, note).
PREVIEW_PAIRS = (
    (("sheep", [("S", 0.11), ("'i:", 0.17), ("p", 0.09)], 1, "/i:/ tense, spread"),
     ("ship", [("S", 0.11), ("'I", 0.10), ("p", 0.09)], 1, "/I/ lax, more open")),
    (("pat", [("p", 0.09), ("'a", 0.15), ("t", 0.08)], 0, "/p/ lips closed"),
     ("tat", [("t", 0.09), ("'a", 0.15), ("t", 0.08)], 0, "/t/ lips apart, tongue")),
    (("fan", [("f", 0.10), ("'a", 0.15), ("n", 0.08)], 0, "/f/ lip to teeth"),
     ("pan", [("p", 0.09), ("'a", 0.15), ("n", 0.08)], 0, "/p/ lips closed")),
    (("boot", [("b", 0.07), ("'u:", 0.17), ("t", 0.08)], 1, "/u:/ rounded"),
     ("beat", [("b", 0.07), ("'i:", 0.17), ("t", 0.08)], 1, "/i:/ spread")),
)

NEAR_HOMOPHONE_WORDS = {"SHEEP", "SHIP", "BEAT", "BIT", "BAT", "PAT", "FAN", "VAN", "PAN", "BOOT", "BOUGHT",
                        "FEEL", "FILL", "LEAVE", "LIVE", "SEAT", "SIT", "PEAK", "PICK", "HEAT", "HIT", "MAT",
                        "BEACH", "BITCH", "FULL", "FOOL", "POOL", "PULL", "THIN", "TIN", "FAT", "VAT"}


def _constructed_alignment(phones, lead_in: float = 0.25, tail: float = 0.25):
    out, t = [], lead_in
    for ph, d in phones:
        out.append({"phoneme": ph, "start": t, "end": t + d})
        t += d
    return out, t + tail


def _current_word(words, t: float) -> str:
    for w in words:
        if w["start"] <= t < w["end"]:
            return w["word"]
    return ""


def render_preview(out, anim, spec, manifest, sources, png: bool = True, gif: bool = False, dpi: int = 72) -> None:
    """``OUT/preview.png``: near-homophone key frames, a frame strip and mouth curves of one test sequence."""
    from .visemes import P_INDEX

    plt = _matplotlib()
    out = Path(out)
    topo = anim.topo
    # the sequence to show: a test sequence with a near-homophone word if there is one
    cands = [m for m in manifest if m["split"] == "test"] or list(manifest)
    pick = cands[0]
    for m in cands:
        words = {w["word"].upper().strip(".,!?;:'\"") for w in sources[m["name"]].words}
        if words & NEAR_HOMOPHONE_WORDS:
            pick = m
            break
    subject = pick["subject"]
    utt = sources[pick["name"]]
    fps = spec.fps
    verts, mouth = anim.animate(subject, pick["name"], utt.phonemes, utt.words, pick["duration"], pick["frames"], fps)

    if png:
        fig = plt.figure(figsize=(16, 7.4))
        gs = fig.add_gridspec(3, 8, height_ratios=[0.75, 1.55, 0.9], hspace=0.3, wspace=0.05)
        for k, pair in enumerate(PREVIEW_PAIRS):
            for j, (word, phones, key, note) in enumerate(pair):
                ali, dur = _constructed_alignment(phones)
                T = int(round(dur * fps))
                v, _ = anim.animate(subject, f"preview-{word}", ali, [{"word": word, "start": 0.25, "end": dur - 0.25}],
                                    dur, T, fps)
                # the frame where the gesture peaks: the visible gesture leads the sound slightly
                tk = 0.5 * (ali[key]["start"] + ali[key]["end"]) - anim.subject(subject).style.lead
                ax = fig.add_subplot(gs[0, 2 * k + j])
                draw_face(ax, v[int(round(tk * fps))], topo, zoom="mouth")
                ax.set_title(f"'{word}'\n{note}", fontsize=9.5)
        speech = [w for w in utt.words] or [{"start": 0.0, "end": pick["duration"]}]
        t0, t1 = speech[0]["start"], speech[-1]["end"]
        times = np.linspace(t0 + 0.04, t1 - 0.04, 8)
        for i, t in enumerate(times):
            ax = fig.add_subplot(gs[1, i])
            f = min(int(round(t * fps)), len(verts) - 1)
            draw_face(ax, verts[f], topo)
            ax.set_title(f"{t:.2f} s  {_current_word(utt.words, t)}", fontsize=9)
        ax = fig.add_subplot(gs[2, :])
        tt = np.arange(len(mouth)) / fps
        for name, color in (("jaw", "#444444"), ("open", "#1f77b4"), ("close", "#d62728"), ("spread", "#2ca02c"),
                            ("round", "#9467bd"), ("tuck", "#ff7f0e")):
            ax.plot(tt, mouth[:, P_INDEX[name]], label=name, color=color, linewidth=1.3)
        for w in utt.words:
            ax.axvspan(w["start"], w["end"], color="#000000", alpha=0.04)
            ax.text(0.5 * (w["start"] + w["end"]), 1.18, w["word"].lower(), ha="center", fontsize=8)
        for t in times:
            ax.axvline(t, color="#999999", linewidth=0.6, linestyle=":")
        ax.set_xlim(0, tt[-1] if len(tt) else 1)
        ax.set_ylim(-1.05, 1.3)
        ax.set_xlabel("seconds")
        ax.legend(loc="lower right", ncol=6, fontsize=8, frameon=False)
        fig.suptitle(
            f"Synthetic {spec.name.upper()} sample: near-homophone key frames (top), {pick['name']} "
            f"({pick['split']} split): \"{utt.text.lower()}\" (middle), mouth parameters (bottom)",
            fontsize=11,
        )
        fig.savefig(out / "preview.png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
    if gif:
        labels = [_current_word(utt.words, i / fps) for i in range(len(verts))]
        save_gif(out / "preview.gif", verts, topo, fps, step=max(1, int(round(fps / 15))), labels=labels)
