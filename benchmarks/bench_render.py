"""Render speed of the MP4 renderer (`training.animation.render`): frames/s for 10 s at 30 fps of a VOCASET-size mesh.

    python benchmarks/bench_render.py [--seconds 10] [--fps 30] [--height 360] [--output FILE]

The mesh is synthesised (no FLAME download here): a closed ellipsoid head of 5,023 vertices with its bottom pole cut
open like FLAME's neck, 9,963 triangles (FLAME: 5,023 and 9,976), animated by a jaw-like opening and a small sway so
that every frame is re-shaded. Reported, as JSON: the rasteriser alone (one panel, and two panels side by side as the
runner renders ground truth vs prediction), and the whole `render_video` (rasterise + H.264 + AAC + mux) for one and
two panels; medians of `--repeats` runs, each over all frames. Back faces are culled (the head is consistently wound,
as FLAME is); `raster_1_panel_no_culling` shows what that saves.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.reporting import emit_json  # noqa: E402
from training.animation.render import (  # noqa: E402
    FrameView,
    back_face_winding,
    render_mesh,
    render_video,
    render_video_frames,
    vertex_albedo,
)


def vocaset_size_head(rings: int = 62, segments: int = 81) -> tuple[np.ndarray, np.ndarray]:
    """`(5023, 3)` vertices and `(9963, 3)` triangles of an ellipsoid head (metres, y up, z to the viewer) whose
    bottom pole is left out (an open neck)."""
    theta = np.linspace(0, np.pi, rings + 2)[1:-1]  # latitude rings, poles excluded
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring_vertices = np.stack([0.075 * np.sin(t) * np.sin(p), 0.11 * np.cos(t), 0.09 * np.sin(t) * np.cos(p)], -1)
    vertices = np.concatenate([[[0.0, 0.11, 0.0]], ring_vertices.reshape(-1, 3)])  # top pole first
    index = 1 + np.arange(rings * segments).reshape(rings, segments)
    faces = [np.stack([np.zeros(segments, int), index[0], np.roll(index[0], -1)], 1)]
    for r in range(rings - 1):
        a, b = index[r], np.roll(index[r], -1)
        c, d = index[r + 1], np.roll(index[r + 1], -1)
        faces += [np.stack([a, c, b], 1), np.stack([b, c, d], 1)]
    return vertices, np.concatenate(faces)


def animate_head(vertices: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """`(frames, V, 3)`: the lower face opens and closes at ~4 Hz (syllable rate), the head sways slowly."""
    t = np.arange(frames)[:, None] / fps
    jaw = np.clip(-vertices[None, :, 1] / 0.11, 0, None) * (vertices[None, :, 2] > 0)
    opening = 0.012 * (0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t))
    out = np.repeat(vertices[None], frames, 0)
    out[..., 1] -= opening * jaw
    out[..., 0] += 0.004 * np.sin(2 * np.pi * 0.3 * t)
    return out


def timed(function, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds (this process, all threads) of `repeats` calls. On a shared machine the wall time
    grows with the other work while the CPU time stays about the same."""
    walls, cpus = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - started_cpu)
    return statistics.median(walls), statistics.median(cpus)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--height", type=int, default=360, help="panel height in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    vertices, faces = vocaset_size_head()
    frames = int(round(args.seconds * args.fps))
    sequence = animate_head(vertices, frames, args.fps)
    prediction = sequence + np.random.default_rng(0).normal(0, 2e-4, sequence.shape)
    audio = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(args.seconds * 16000)) / 16000)).astype(np.float32)
    view = FrameView([sequence], args.height)
    albedo = vertex_albedo(len(vertices))
    cull = back_face_winding(sequence[0], faces, view)

    def raster_one():
        for frame in sequence:
            render_mesh(frame, faces, view, albedo, cull)

    def raster_one_no_culling():
        for frame in sequence:
            render_mesh(frame, faces, view, albedo)

    def raster_two():
        for _ in render_video_frames({"ground truth": sequence, "prediction": prediction}, faces, height=args.height):
            pass

    with tempfile.TemporaryDirectory() as tmp:
        def video_one():
            render_video(Path(tmp) / "one.mp4", {"prediction": sequence}, args.fps, faces, audio, 16000,
                         height=args.height)

        def video_two():
            render_video(Path(tmp) / "two.mp4", {"ground truth": sequence, "prediction": prediction}, args.fps, faces,
                         audio, 16000, height=args.height)

        measured = {name: timed(fn, args.repeats) for name, fn in
                   [("raster_1_panel", raster_one), ("raster_1_panel_no_culling", raster_one_no_culling),
                    ("raster_2_panels", raster_two),
                    ("video_1_panel", video_one), ("video_2_panels", video_two)]}
        video_bytes = (Path(tmp) / "two.mp4").stat().st_size
    seconds = {name: wall for name, (wall, _) in measured.items()}
    cpu_seconds = {name: cpu for name, (_, cpu) in measured.items()}

    result = {
        "mesh": {"vertices": int(len(vertices)), "triangles": int(len(faces)), "synthetic": "ellipsoid head, open neck"},
        "frames": frames,
        "fps": args.fps,
        "seconds_of_animation": args.seconds,
        "panel_pixels": [view.width, view.height],
        "shading": "Gouraud (per-vertex normals), Lambert + Blinn-Phong, numpy z-buffer",
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "frames_per_second": {k: round(frames / v, 1) for k, v in seconds.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in cpu_seconds.items()},
        "frames_per_cpu_second": {k: round(frames / v, 1) for k, v in cpu_seconds.items()},
        "realtime_factor_video_2_panels": round(args.seconds / seconds["video_2_panels"], 2),
        "mp4_bytes_2_panels": video_bytes,
        "repeats": args.repeats,
        "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "numpy": np.__version__},
    }
    result["load_average_1min_before"] = round(load_before, 2)
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)  # other work on the machine skews the figures
    result["machine"]["cpus"] = os.cpu_count()
    return emit_json(result, args.output)


if __name__ == "__main__":
    main()
