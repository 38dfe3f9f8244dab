"""Front-view renders of vertex sequences of any mesh (FLAME, BIWI, the synthetic face): PNG frame grids, GIFs and
H.264 MP4 videos with the speech muxed in.

PNG and GIF (matplotlib): with triangles (`mesh.obj` next to the data, or any OBJ) the mesh is drawn as shaded
polygons sorted by depth; without, as a point cloud coloured by depth. Lip vertices, when known, are marked.

MP4 (`render_video`): a numpy z-buffer rasteriser (headless, CPU, no OpenGL) draws each frame front-lit with Gouraud
shading (per-vertex normals, Lambert + Blinn-Phong highlight, lips tinted), one panel per labelled sequence side by
side, framed alike; PyAV (FFmpeg in its wheels) encodes it as H.264 / yuv420p at the model's frame rate, with the
audio as AAC, so that browsers play it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
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


# ---------------------------------------------------------------------------------------------------------------------
# Shaded video frames: a numpy z-buffer rasteriser
# ---------------------------------------------------------------------------------------------------------------------

SKIN = np.array([0.87, 0.71, 0.61])
LIPS = np.array([0.74, 0.40, 0.40])
BACKGROUND = np.array([30, 32, 36], dtype=np.uint8)  # dark: the lit face stands out
LIGHT = np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0])  # from the front, above, camera's left
AMBIENT, DIFFUSE, SPECULAR, SHININESS = 0.22, 0.78, 0.18, 24.0


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """`(V, 3)` unit normals: area-weighted sums of the triangle normals, each turned towards the viewer (+z) first,
    so a mesh of mixed winding is lit alike on both sides. Vertices in no triangle get +z."""
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals *= np.where(normals[:, 2:] < 0, -1.0, 1.0)
    index = faces.reshape(-1)
    summed = np.stack(
        [np.bincount(index, weights=np.repeat(normals[:, k], 3), minlength=len(vertices)) for k in range(3)], axis=1
    )
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    lonely = length[:, 0] == 0
    summed[lonely], length[lonely] = (0.0, 0.0, 1.0), 1.0
    return summed / length


def shade(normals: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """`(V, 3)` RGB in [0, 1]: ambient + Lambert diffuse + a Blinn-Phong highlight, for an orthographic camera on +z."""
    half = LIGHT + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    diffuse = np.clip(normals @ LIGHT, 0.0, None)
    specular = np.clip(normals @ half, 0.0, None) ** SHININESS
    return np.clip(albedo * (AMBIENT + DIFFUSE * diffuse)[:, None] + (SPECULAR * specular)[:, None], 0.0, 1.0)


class FrameView:
    """One framing for a set of sequences: an orthographic front view (x right, y up, z towards the viewer) that
    fits every vertex of every frame into a `height`-pixel panel, so panels side by side share a scale."""

    def __init__(self, sequences: list[np.ndarray], height: int = 360, pad: float = 0.04):
        (x0, x1), (y0, y1) = _limits(sequences)
        self.scale = (height - 2 * pad * height) / max(y1 - y0, 1e-12)
        self.width = int(round((x1 - x0) * self.scale + 2 * pad * height))
        self.width += self.width % 2
        self.height = height + height % 2
        self.center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """`(V, 2)` pixel coordinates (x right, y down) of `(V, 3)` vertices."""
        xy = (vertices[:, :2] - self.center) * self.scale
        return np.stack([xy[:, 0] + self.width / 2, self.height / 2 - xy[:, 1]], axis=1)


def _fragments(screen: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int, cull: int = 0):
    """The z-buffer winners of the scan conversion (see `rasterize`): their pixel indices, triangle indices,
    barycentric weights w0 and w1, and the sign of their triangles' screen area. `cull` (+1 / -1) drops the
    triangles whose signed area has that sign (back faces of a consistently wound mesh)."""
    corners = screen[faces]  # (F, 3, 2)
    x0, x1, x2 = corners[:, 0, 0], corners[:, 1, 0], corners[:, 2, 0]
    y0, y1, y2 = corners[:, 0, 1], corners[:, 1, 1], corners[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    # (numpy reductions over an axis of 3 are slow: the corners are combined column by column)
    top = np.maximum(np.ceil(np.minimum(np.minimum(y0, y1), y2) - 0.5), 0)
    bottom = np.minimum(np.floor(np.maximum(np.maximum(y0, y1), y2) - 0.5), height - 1)
    keep = (np.abs(area) > 1e-12) & (bottom >= top) & np.isfinite(area)
    keep &= (np.maximum(np.maximum(x0, x1), x2) >= 0.5) & (np.minimum(np.minimum(x0, x1), x2) <= width - 0.5)
    if cull:
        keep &= np.sign(area) != cull
    ids = np.flatnonzero(keep)
    if not len(ids):
        return None
    x0, x1, x2, y0, y1, y2, area = (v[ids] for v in (x0, x1, x2, y0, y1, y2, area))
    # Barycentric weights as affine functions of the pixel centre: w_k = a_k * px + b_k * py + c_k.
    a = [(y1 - y2) / area, (y2 - y0) / area, (y0 - y1) / area]
    b = [(x2 - x1) / area, (x0 - x2) / area, (x1 - x0) / area]
    c = [(x1 * y2 - x2 * y1) / area, (x2 * y0 - x0 * y2) / area, (x0 * y1 - x1 * y0) / area]
    top = top[ids].astype(np.int64)
    rows = bottom[ids].astype(np.int64) - top + 1
    # one entry per (triangle, pixel row): the span of pixel centres inside all three edges
    row_owner = np.repeat(np.arange(len(ids)), rows)
    row = top[row_owner] + np.arange(len(row_owner)) - np.repeat(np.cumsum(rows) - rows, rows)
    center_y = row + 0.5
    low, high = np.full(len(row_owner), -np.inf), np.full(len(row_owner), np.inf)
    feasible = np.ones(len(row_owner), dtype=bool)
    for k in range(3):  # w_k >= 0  <=>  slope * px + offset >= 0
        slope = a[k].take(row_owner)
        offset = b[k].take(row_owner) * center_y + c[k].take(row_owner) + 1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = -offset / slope
        low = np.where(slope > 0, np.maximum(low, bound), low)
        high = np.where(slope < 0, np.minimum(high, bound), high)
        feasible &= (slope != 0) | (offset >= 0)
    first = np.ceil(np.clip(low, -1.0, width + 1.0) - 0.5).clip(0, None).astype(np.int64)
    last = np.floor(np.clip(high, -1.0, width + 1.0) - 0.5).clip(None, width - 1).astype(np.int64)
    count = np.where(feasible, np.maximum(last - first + 1, 0), 0)
    # one fragment per covered pixel
    fragment_row = np.repeat(np.arange(len(row_owner)), count)
    if not len(fragment_row):
        return None
    px = first.take(fragment_row) + np.arange(len(fragment_row)) - np.repeat(np.cumsum(count) - count, count)
    py = row.take(fragment_row)
    owner = row_owner.take(fragment_row)
    cx, cy = px + 0.5, py + 0.5
    w0 = a[0].take(owner) * cx + b[0].take(owner) * cy + c[0].take(owner)
    w1 = a[1].take(owner) * cx + b[1].take(owner) * cy + c[1].take(owner)
    triangle = ids.take(owner)
    corner_depth = depth[faces[triangle]]
    depths = w0 * corner_depth[:, 0] + w1 * corner_depth[:, 1] + (1.0 - w0 - w1) * corner_depth[:, 2]
    pixels = py * width + px
    zbuffer = np.full(height * width, -np.inf)
    np.maximum.at(zbuffer, pixels, depths)
    front = depths >= zbuffer.take(pixels)
    return pixels[front], triangle[front], w0[front], w1[front], np.sign(area.take(owner[front]))


def rasterize(screen: np.ndarray, depth: np.ndarray, colors: np.ndarray, faces: np.ndarray, width: int, height: int,
              background: np.ndarray = BACKGROUND, cull: int = 0) -> np.ndarray:
    """`(height, width, 3)` uint8 image of triangles with Gouraud-interpolated vertex colours, nearest (largest
    depth) wins. `screen` (V, 2) pixel coordinates, `depth` (V,), `colors` (V, 3) in [0, 1], `faces` (F, 3);
    `cull` (+1 / -1): skip the triangles of that screen winding (see `visible_winding`).

    Vectorised scan conversion: every pixel row a triangle spans is one entry, whose covered span of pixel centres
    comes from the three edge functions (barycentric weights, affine in the pixel position); every covered pixel is
    then one fragment, so the work grows with the pixels drawn, not with bounding boxes. The z-buffer is one
    `np.maximum.at` over the fragments."""
    image = np.empty((height * width, 3), dtype=np.uint8)
    image[:] = background
    found = _fragments(screen, depth, faces, width, height, cull)
    if found is not None:
        pixels, triangle, w0, w1, _ = found
        corners = faces[triangle]
        rgb = (w0[:, None] * colors[corners[:, 0]] + w1[:, None] * colors[corners[:, 1]]
               + (1.0 - w0 - w1)[:, None] * colors[corners[:, 2]])
        image[pixels] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image.reshape(height, width, 3)


def visible_winding(screen: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int) -> int:
    """The screen winding (+1 / -1) of the triangles that face the viewer, when at least 99% of the visible pixels
    agree (a consistently wound mesh: the other winding can be culled); 0 otherwise (mixed winding: cull nothing)."""
    found = _fragments(screen, depth, faces, width, height)
    if found is None or not len(found[4]):
        return 0
    share = float((found[4] > 0).mean())
    return 1 if share >= 0.99 else -1 if share <= 0.01 else 0


def splat_points(screen: np.ndarray, depth: np.ndarray, colors: np.ndarray, width: int, height: int,
                 radius: int = 1, background: np.ndarray = BACKGROUND) -> np.ndarray:
    """A point cloud as `(2 * radius + 1)`-pixel squares with a z-buffer (for meshes without triangles)."""
    image = np.empty((height * width, 3), dtype=np.uint8)
    image[:] = background
    offsets = np.arange(-radius, radius + 1)
    px = (np.floor(screen[:, 0]).astype(np.int64)[:, None, None] + offsets[None, None, :]).repeat(len(offsets), 1)
    py = (np.floor(screen[:, 1]).astype(np.int64)[:, None, None] + offsets[None, :, None]).repeat(len(offsets), 2)
    owner = np.broadcast_to(np.arange(len(screen))[:, None, None], px.shape)
    valid = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    pixels, owner = (py * width + px)[valid], owner[valid]
    zbuffer = np.full(height * width, -np.inf)
    np.maximum.at(zbuffer, pixels, depth[owner])
    front = depth[owner] >= zbuffer[pixels]
    image[pixels[front]] = np.clip(colors[owner[front]] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image.reshape(height, width, 3)


def vertex_albedo(num_vertices: int, lips: np.ndarray | None = None) -> np.ndarray:
    """`(V, 3)` base colours: skin, the lip vertices (when known) tinted red."""
    albedo = np.tile(SKIN, (num_vertices, 1))
    if lips is not None and len(lips):
        albedo[np.asarray(lips)] = LIPS
    return albedo


def render_mesh(vertices: np.ndarray, faces: np.ndarray | None, view: FrameView, albedo: np.ndarray,
                cull: int = 0) -> np.ndarray:
    """One `(view.height, view.width, 3)` uint8 front view of `(V, 3)` vertices: shaded triangles, or points.
    `cull`: the back-face winding to skip (`visible_winding` of a frame of the same mesh), 0 for none."""
    screen = view.project(vertices)
    if faces is None:
        depth = vertices[:, 2]
        tone = 0.45 + 0.55 * (depth - depth.min()) / max(np.ptp(depth), 1e-12)
        return splat_points(screen, depth, albedo * tone[:, None], view.width, view.height)
    return rasterize(screen, vertices[:, 2], shade(vertex_normals(vertices, faces), albedo), faces, view.width,
                     view.height, cull=cull)


def back_face_winding(vertices: np.ndarray, faces: np.ndarray | None, view: FrameView) -> int:
    """The winding to cull for this mesh (the opposite of `visible_winding` on `vertices`), 0 for none."""
    if faces is None:
        return 0
    return -visible_winding(view.project(vertices), vertices[:, 2], faces, view.width, view.height)


def _label_strip(labels: list[str], panel_width: int, gap: int, height: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    width = len(labels) * panel_width + (len(labels) - 1) * gap
    strip = Image.new("RGB", (width, height), tuple(int(v) for v in BACKGROUND))
    draw = ImageDraw.Draw(strip)
    try:
        font = ImageFont.load_default(size=max(10, int(height * 0.62)))
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    for i, label in enumerate(labels):
        box = draw.textbbox((0, 0), label, font=font)
        x = i * (panel_width + gap) + (panel_width - (box[2] - box[0])) / 2
        draw.text((x, (height - (box[3] - box[1])) / 2 - box[1]), label, fill=(225, 225, 225), font=font)
    return np.asarray(strip)


def render_video_frames(
    rows: dict[str, np.ndarray],
    faces: np.ndarray | None = None,
    lips: np.ndarray | None = None,
    height: int = 360,
    labels: bool = True,
    gap: int = 4,
    fit_to: list[np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """`(H, W, 3)` uint8 frames: the labelled sequences side by side (same framing), a label strip on top; as many
    frames as the shortest sequence. Even `H` and `W` (H.264 / yuv420p). `fit_to`: the sequences the framing must
    fit (default: the rows), so separately written videos can share one framing."""
    sequences = {label: as_frames(seq) for label, seq in rows.items()}
    if not sequences:
        raise ValueError("Nothing to render: rows is empty.")
    for label, sequence in sequences.items():
        if not np.isfinite(sequence).all():
            raise ValueError(f"The {label!r} sequence has non-finite vertices (NaN or infinity): nothing to draw.")
    view = FrameView([as_frames(s) for s in fit_to] if fit_to else list(sequences.values()), height)
    faces = None if faces is None else np.asarray(faces, dtype=np.int64)
    num_vertices = next(iter(sequences.values())).shape[1]
    if faces is not None and faces.size and faces.max() >= num_vertices:
        raise ValueError(f"The mesh's triangles index vertex {faces.max()}; the sequences have {num_vertices}.")
    albedo = vertex_albedo(num_vertices, lips)
    strip = _label_strip(list(sequences), view.width, gap, max(16, height // 14)) if labels else None
    width = len(sequences) * view.width + (len(sequences) - 1) * gap
    total_height = view.height + (0 if strip is None else strip.shape[0])
    pad_w, pad_h = width % 2, total_height % 2
    length = min(len(s) for s in sequences.values())
    cull = {label: back_face_winding(sequence[0], faces, view) for label, sequence in sequences.items()}
    for index in range(length):
        frame = np.empty((total_height + pad_h, width + pad_w, 3), dtype=np.uint8)
        frame[:] = BACKGROUND
        top = 0
        if strip is not None:
            frame[: strip.shape[0], :width] = strip
            top = strip.shape[0]
        for i, (label, sequence) in enumerate(sequences.items()):
            x = i * (view.width + gap)
            frame[top: top + view.height, x: x + view.width] = render_mesh(sequence[index], faces, view, albedo,
                                                                           cull[label])
        yield frame


# ---------------------------------------------------------------------------------------------------------------------
# MP4: H.264 video + AAC audio through PyAV
# ---------------------------------------------------------------------------------------------------------------------

H264_ENCODERS = ("libx264", "libopenh264", "h264")


def _h264_encoder() -> str:
    import av

    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # av raises UnknownCodecError (or ValueError in older versions)
            continue
    raise RuntimeError(f"This PyAV build has no H.264 encoder (tried {', '.join(H264_ENCODERS)}).")


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sampling_rate: int = 16000,
    crf: int = 20,
) -> Path:
    """Encode `(H, W, 3)` uint8 RGB frames (even H and W) as an H.264 MP4 at `fps` (yuv420p, `faststart`, so browsers
    play it while it loads), with mono float `audio` at `sampling_rate` as AAC when given; audio and video packets are
    interleaved in time. Returns the path."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    try:
        first = next(frames)
    except StopIteration:
        raise ValueError("No frames to write.") from None
    height, width = first.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 (yuv420p) needs an even frame size, got {width} x {height}.")
    rate = Fraction(fps).limit_denominator(1001)
    samples = None
    if audio is not None:
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        peak = np.abs(samples).max(initial=0.0)
        if peak > 1.0:  # normalised model input: bring it back into range
            samples = samples / peak * 0.9
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        encoder = _h264_encoder()
        video = container.add_stream(encoder, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if encoder == "libx264":
            video.options = {"crf": str(crf), "preset": "veryfast", "tune": "animation"}
        sound, sent, chunk = None, 0, 1024
        if samples is not None:
            sound = container.add_stream("aac", rate=int(sampling_rate), layout="mono")

        def send_audio(until: int):
            nonlocal sent
            while sound is not None and sent < min(until, len(samples)):
                piece = samples[sent: sent + chunk]
                audio_frame = av.AudioFrame.from_ndarray(piece[None], format="flt", layout="mono")
                audio_frame.sample_rate, audio_frame.pts = int(sampling_rate), sent
                audio_frame.time_base = Fraction(1, int(sampling_rate))
                container.mux(sound.encode(audio_frame))
                sent += len(piece)

        index = 0
        for frame in _chain(first, frames):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts, video_frame.time_base = index, 1 / rate
            container.mux(video.encode(video_frame))
            index += 1
            send_audio(int(round(index / rate * sampling_rate)))
        container.mux(video.encode(None))
        if sound is not None:
            send_audio(len(samples))
            container.mux(sound.encode(None))
    return path


def _chain(first, rest):
    yield first
    yield from rest


def render_video(
    path: str | Path,
    rows: dict[str, np.ndarray],
    fps: float,
    faces: np.ndarray | None = None,
    audio: np.ndarray | str | Path | None = None,
    sampling_rate: int = 16000,
    lips: np.ndarray | None = None,
    height: int = 360,
    labels: bool = True,
    fit_to: list[np.ndarray] | None = None,
) -> Path:
    """An H.264 MP4 of the labelled vertex sequences (`(T, V*3)` or `(T, V, 3)`, e.g. ground truth and prediction)
    side by side, shaded from `faces` (the dataset's `mesh.obj` triangles; points without), at the model's `fps`,
    with `audio` muxed in: mono samples at `sampling_rate`, or a file (decoded and resampled to `sampling_rate`).
    `height`: pixels of a panel; `fit_to`: sequences the shared framing must fit (default: the rows)."""
    if isinstance(audio, (str, Path)):
        from ..common.audio import decode_audio

        audio = decode_audio(str(audio), sampling_rate)
    frames = render_video_frames(rows, faces, lips, height=height, labels=labels, fit_to=fit_to)
    return write_mp4(path, frames, fps, audio, sampling_rate)
