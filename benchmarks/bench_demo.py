"""Demo latency (`app.py`): from the upload of a speech file to both videos, through the page's HTTP API.

    python benchmarks/bench_demo.py [--seconds 5] [--repeats 3] [--models faceformer voca] [--cache_dir DIR] \
        [--threads 1] [--output FILE]

Starts the demo page in this process on a free local port (models from `--cache_dir`, trained there first when it has
none: the demo's first start), then, with `gradio_client` as the browser would, uploads `--seconds` of speech (the
embedded VOCASET sample's sentences, concatenated and cut), clicks Animate for every model and waits until both
MP4s are downloaded (`--models`: a page of only those). Reported, as JSON: the first start (training) and the later start (loading) of the demo, and
per model the median upload-to-both-videos seconds with the demo's own split (predict / render), frames and rate,
and the training time of its two models recorded at the first start.
The browser's own work (drawing the page, decoding the videos) is not in it; `tests/test_demo.py` prints the
latency in Chromium too.
"""

import argparse
import json
import os
import platform
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

import app  # noqa: E402
from benchmarks.reporting import emit_json  # noqa: E402
from training.animation.data import default_animation_dir  # noqa: E402
from training.common.audio import SAMPLING_RATE, decode_audio  # noqa: E402


def speech_of(seconds: float) -> np.ndarray:
    """`seconds` of the embedded sample's speech at 16 kHz: its sentences end to end, cut to length."""
    pieces, total = [], 0
    for wav in sorted((default_animation_dir() / "wav").glob("*.wav")):
        pieces.append(decode_audio(str(wav), SAMPLING_RATE))
        total += len(pieces[-1])
        if total >= seconds * SAMPLING_RATE:
            return np.concatenate(pieces)[: int(seconds * SAMPLING_RATE)]
    raise ValueError(f"The sample holds only {total / SAMPLING_RATE:.1f} s of speech, not {seconds:g}.")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="speech uploaded")
    parser.add_argument("--repeats", type=int, default=3, help="timed requests per model (after one untimed)")
    parser.add_argument("--models", nargs="+", help="recipe names to time (default: every model of the page)")
    parser.add_argument("--cache_dir", type=Path, help="the demo's model cache (default: a fresh temporary one)")
    parser.add_argument("--train_steps", type=int, default=60, help="as app.py's (a first start trains this long)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (app.py's default: 1)")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)

    from gradio_client import Client, handle_file

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or Path(tmp) / "cache"
        first_start = not any(cache.glob("*/*/demo_ready.json"))  # nothing cached yet: the models are trained
        started = time.perf_counter()
        folders = app.ensure_models(cache, args.train_steps, say=lambda message: None, names=args.models)
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        demo = app.Demo(folders, Path(tmp) / "out")
        load_seconds = time.perf_counter() - started
        port = free_port()
        page = app.build_page(demo)
        page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                            allowed_paths=[str(Path(tmp) / "out")])
        speech = Path(tmp) / "speech.wav"
        sf.write(speech, speech_of(args.seconds), SAMPLING_RATE)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(Path(tmp) / "downloads"))
        models = {}
        try:
            for display_name, name in demo.names.items():
                style = demo.styles(display_name)[0]
                runs = []
                for attempt in range(args.repeats + 1):
                    started = time.perf_counter()
                    baseline, wav2sem, _files, summary = client.predict(
                        handle_file(str(speech)), display_name, style, api_name="/animate")
                    elapsed = time.perf_counter() - started
                    videos = [Path(v["video"] if isinstance(v, dict) else v) for v in (baseline, wav2sem)]
                    if not all(v.is_file() and v.stat().st_size > 0 for v in videos):
                        raise RuntimeError(f"{display_name}: the videos did not arrive ({videos}).")
                    split = re.search(r"(\d+) frames at ([\d.]+) fps; predicted in ([\d.]+) s, rendered in ([\d.]+) s",
                                      summary)
                    if attempt:  # the first request of a model warms it up
                        runs.append((elapsed, float(split[3]), float(split[4])))
                models[name] = {
                    "upload_to_both_videos_s": round(statistics.median(r[0] for r in runs), 2),
                    "predict_s": round(statistics.median(r[1] for r in runs), 2),
                    "render_both_s": round(statistics.median(r[2] for r in runs), 2),
                    "all_upload_to_both_videos_s": [round(r[0], 2) for r in runs],
                    "frames": int(split[1]),
                    "fps": float(split[2]),
                    "first_start_training_s": {  # as the demo recorded it when it trained the model
                        variant: json.loads((folder / "demo_ready.json").read_text())["seconds"]
                        for variant, folder in folders[name].items()},
                }
        finally:
            page.close()
    result = {
        "speech_seconds": args.seconds,
        "demo_train_steps": args.train_steps,
        "video_height": demo.video_height,
        "demo_first_start_s": round(build_seconds, 1) if first_start else None,  # trains every model of the page
        "demo_load_models_s": round(load_seconds, 1),
        "models": models,
        "repeats": args.repeats,
        "torch_threads": args.threads,
        "path": "HTTP upload through gradio_client to a local Gradio server in this process, both MP4s downloaded",
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }
    return emit_json(result, args.output)


if __name__ == "__main__":
    main()
