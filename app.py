"""Wav2Sem demo: speech in, two talking faces out (the baseline and the + Wav2Sem model), as videos with sound.

    python app.py [--cache_dir DIR] [--host 127.0.0.1] [--port 7860] [--train_steps 60]

Record or upload speech, pick an animation model (every model `training.animation.recipes.ANIMATION_RECIPES`
registers: FaceFormer, VOCA, ...) and a speaking style; the page shows the model with a plain audio encoder and the
same model with Wav2Sem fused in, side by side, as H.264 MP4s with the speech, and offers the predicted vertices
(`.npy`, (T, V*3) at the model's frame rate) for download.

It runs offline, as a Hugging Face Space too (`app.py` at the repository root). On the first start it trains tiny
models on the embedded synthetic VOCASET sample (`training/sample_data/vocaset`) with `training/train_animation.py`:
for each model, one over a tiny random HuBERT and one over the same HuBERT fused with a tiny random Wav2Sem. They are
cached in `--cache_dir` (default `~/.cache/wav2sem-demo`), so later starts only load them. These models show the
pipeline working end to end, not lip-sync quality: a few CPU steps on 8 synthetic sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.animation.recipes import ANIMATION_RECIPES  # noqa: E402
from training.common.audio import SAMPLING_RATE, decode_audio, normalize  # noqa: E402

# Bump when the cached models must be rebuilt (another training recipe, encoder, config or data).
DEMO_VERSION = 2
MIN_SECONDS, MAX_SECONDS = 0.5, 20.0
SILENCE_DBFS = -55.0  # RMS level under which an input counts as silent
VARIANTS = {"baseline": "plain encoder", "wav2sem": "+ Wav2Sem"}
# The tiny random encoders of tests/test_train_animation.py: standard conv kernels and strides (50 Hz), width 32.
TINY_HUBERT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.0, mask_time_prob=0.0,
)


# Where a model's published config is too slow for a CPU demo: tiny configs (as the runner's tests use them), and
# fewer sampler steps. Measured on a 2-core Xeon, 1 thread, 60 steps, 5 s of speech: LG-LDM's published size trained
# for 285 s per variant and sampled for 71 s; FaceDiffuser's 1000 DDPM steps took 39 s to sample.
DEMO_TINY_VQVAE = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 24,
                   "tokens_per_frame": 4, "code_dim": 4, "num_embeddings": 32}
DEMO_OVERRIDES = {
    "codetalker": {"feature_dim": 16, "num_hidden_layers": 1, "vqvae_config": DEMO_TINY_VQVAE},
    "lgldm": {"feature_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_inference_steps": 20,
              "vqvae_config": DEMO_TINY_VQVAE},
    "facediffuser": {"diffusion_scheduler": "ddim", "num_inference_steps": 50},
}


class UnusableInput(ValueError):
    """An input the demo cannot animate, with a message for the person who gave it."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("WAV2SEM_DEMO_CACHE", Path.home() / ".cache" / "wav2sem-demo"))


# ---------------------------------------------------------------------------------------------------------------------
# Models: trained once on the embedded sample, cached
# ---------------------------------------------------------------------------------------------------------------------


def model_root(cache_dir: Path, train_steps: int) -> Path:
    return Path(cache_dir) / f"v{DEMO_VERSION}-steps{train_steps}"


def build_encoders(root: Path) -> dict[str, str]:
    """A tiny random HuBERT and a tiny random Wav2Sem, saved once under `root/encoders`."""
    from transformers import AutoModel, HubertConfig

    from modeling_wav2sem import Wav2SemConfig, Wav2SemModel

    paths = {"plain": root / "encoders" / "hubert", "wav2sem": root / "encoders" / "wav2sem"}
    if not (paths["plain"] / "config.json").is_file():
        torch.manual_seed(1)
        save_atomically(AutoModel.from_config(HubertConfig(**TINY_HUBERT)), paths["plain"])
    if not (paths["wav2sem"] / "config.json").is_file():
        torch.manual_seed(2)
        save_atomically(Wav2SemModel(Wav2SemConfig.from_preset("tiny")), paths["wav2sem"])
    return {k: str(v) for k, v in paths.items()}


def save_atomically(model, path: Path):
    staging = path.with_name(path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)


def ensure_models(cache_dir: Path, train_steps: int = 60, say=print, names=None) -> dict[str, dict[str, Path]]:
    """{model name: {"baseline": folder, "wav2sem": folder}}: each registered animation model (or those of `names`)
    trained for `train_steps` steps on the embedded sample, without and with Wav2Sem; trained only where the cache
    lacks it (a folder counts once its `demo_ready.json` is written, so an interrupted build is redone)."""
    import dataclasses

    from training import train_animation

    fields = {f.name for f in dataclasses.fields(train_animation.AnimationArguments)}
    root = model_root(cache_dir, train_steps)
    root.mkdir(parents=True, exist_ok=True)
    encoders = build_encoders(root)
    folders = {}
    unknown = set(names or ()) - set(ANIMATION_RECIPES)
    if unknown:
        raise ValueError(f"No animation model {', '.join(sorted(unknown))}; registered: {', '.join(ANIMATION_RECIPES)}.")
    for name in sorted(names or ANIMATION_RECIPES, key=lambda n: (n != "faceformer", n)):  # FaceFormer first
        folders[name] = {}
        for variant in VARIANTS:
            out = root / f"{name}-{variant}"
            folders[name][variant] = out
            if (out / "demo_ready.json").is_file():
                continue
            say(f"Training the demo's {ANIMATION_RECIPES[name].display_name} ({VARIANTS[variant]}), {train_steps} "
                f"steps on the embedded sample (first start only) ...")
            started = time.time()
            staging = out.with_name(out.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            argv = [
                "--model", name, "--audio_encoder", encoders["plain"], "--output_dir", str(staging),
                "--max_train_steps", str(train_steps), "--per_device_train_batch_size", "2", "--seed", "0",
                "--max_test_sequences", "1", "--eval_conditions", "first", "--render_frames", "0",
                "--render_gif", "false", "--render_video", "false", "--logging_steps", str(max(1, train_steps)),
                "--checkpointing_steps",
                str(10 * train_steps + 1), "--cpu_threads", "1",  # tiny models: more threads only contend
            ]
            if variant == "wav2sem":
                argv += ["--wav2sem", encoders["wav2sem"]]
            if name in DEMO_OVERRIDES and "config_overrides" in fields:
                argv += ["--config_overrides", json.dumps(DEMO_OVERRIDES[name])]
            train_animation.main(argv)
            shutil.rmtree(staging / "checkpoints", ignore_errors=True)
            (staging / "demo_ready.json").write_text(json.dumps(
                {"demo_version": DEMO_VERSION, "train_steps": train_steps, "seconds": round(time.time() - started, 1)}
            ) + "\n")
            shutil.rmtree(out, ignore_errors=True)
            staging.rename(out)
    return folders


class LoadedModel:
    """One trained animation model folder, ready to animate: the model, how its audio is prepared, its templates,
    triangles and lip vertices."""

    def __init__(self, folder: Path):
        from transformers import AutoFeatureExtractor, AutoModel

        import modeling_wav2sem  # noqa: F401  (registers the model types)
        from modeling_wav2sem.metrics import read_region_file
        from training.animation.data import read_templates
        from training.animation.render import read_obj_faces

        self.folder = Path(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        try:
            self.do_normalize = AutoFeatureExtractor.from_pretrained(folder).do_normalize
        except (OSError, ValueError, AttributeError):
            self.do_normalize = True
        self.templates = read_templates(self.folder / "templates.pkl")
        self.faces = read_obj_faces(self.folder / "mesh.obj") if (self.folder / "mesh.obj").is_file() else None
        lips = self.folder / "regions" / "lip_vertices.txt"
        self.lips = read_region_file(lips) if lips.is_file() else None
        self.fps = float(self.model.config.frame_rate)
        self.styles = list(self.model.config.train_subjects)

    def predict(self, audio: np.ndarray, style: str) -> np.ndarray:
        """`(T, V*3)` float32 vertices for 16 kHz mono `audio` in speaking style `style` (on the style's face)."""
        prepared = normalize(audio) if self.do_normalize else audio
        template = self.templates[style] if style in self.templates else next(iter(self.templates.values()))
        with torch.no_grad():
            output = self.model.predict(torch.from_numpy(prepared)[None], torch.from_numpy(template)[None],
                                        subject_index=style)
        return output.vertices[0].float().numpy()


# ---------------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------------


def decode_with_pyav(path: str) -> np.ndarray:
    """Mono float32 16 kHz samples of any container FFmpeg reads (MP3, M4A, WebM/Opus from a browser's recorder)."""
    import av

    chunks = []
    with av.open(path) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLING_RATE)
        for frame in container.decode(container.streams.audio[0]):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def read_speech(path: str | None, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """16 kHz mono samples of an uploaded or recorded file, or `UnusableInput` saying why it cannot be used."""
    if not path:
        raise UnusableInput("No speech yet: record or upload a speech file first.")
    name = Path(path).name
    try:
        samples = decode_audio(path, SAMPLING_RATE)
    except Exception:  # soundfile reads WAV/FLAC/OGG; anything else goes to FFmpeg
        try:
            samples = decode_with_pyav(path)
        except Exception:
            raise UnusableInput(
                f"{name} is not an audio file this demo can read: upload WAV, FLAC, OGG, MP3, M4A or WebM speech."
            ) from None
    seconds = len(samples) / SAMPLING_RATE
    if not np.isfinite(samples).all():
        raise UnusableInput(f"{name} holds invalid samples (NaN or infinity).")
    if seconds < MIN_SECONDS:
        raise UnusableInput(f"{name} is too short ({seconds:.2f} s): give at least {MIN_SECONDS:g} s of speech.")
    if seconds > max_seconds:
        raise UnusableInput(
            f"{name} is too long ({seconds:.1f} s): this demo animates up to {max_seconds:g} s; trim it."
        )
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    level = 20 * np.log10(max(rms, 1e-12))
    if level < SILENCE_DBFS:
        raise UnusableInput(
            f"{name} is silent (level {level:.0f} dBFS): record again closer to the microphone, or upload speech."
        )
    return samples


# ---------------------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------------------


class Demo:
    def __init__(self, folders: dict[str, dict[str, Path]], output_root: Path, max_seconds: float = MAX_SECONDS,
                 video_height: int = 320):
        self.models = {name: {v: LoadedModel(path) for v, path in variants.items()} for name, variants in folders.items()}
        self.names = {ANIMATION_RECIPES[name].display_name: name for name in self.models}
        self.output_root = Path(output_root)
        self.max_seconds = max_seconds
        self.video_height = video_height

    def styles(self, display_name: str) -> list[str]:
        return self.models[self.names[display_name]]["baseline"].styles

    def animate(self, audio_path: str | None, display_name: str, style: str):
        """(baseline MP4, + Wav2Sem MP4, [vertex .npy files], a summary line) for one request."""
        from training.animation.render import render_video

        if display_name not in self.names:
            raise UnusableInput(f"Unknown model {display_name!r}; choose one of {', '.join(self.names)}.")
        name = self.names[display_name]
        pair = self.models[name]
        if style not in pair["baseline"].styles:
            raise UnusableInput(f"Unknown speaking style {style!r} for {display_name}.")
        audio = read_speech(audio_path, self.max_seconds)
        started = time.time()
        vertices = {variant: model.predict(audio, style) for variant, model in pair.items()}
        predicted = time.time() - started
        self.output_root.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix="run-", dir=self.output_root))
        fit = list(vertices.values())  # one framing for both videos
        labels = {"baseline": display_name, "wav2sem": f"{display_name} + Wav2Sem"}

        def render(variant):
            model = pair[variant]
            path = out / f"{name}_{variant}_{style}.mp4"
            return render_video(path, {labels[variant]: vertices[variant]}, model.fps, model.faces, audio,
                                SAMPLING_RATE, lips=model.lips, height=self.video_height, fit_to=fit)

        with ThreadPoolExecutor(max_workers=2) as pool:
            videos = list(pool.map(render, list(VARIANTS)))
        files = []
        for variant, frames in vertices.items():
            files.append(out / f"{name}_{variant}_{style}.npy")
            np.save(files[-1], frames)
        total = time.time() - started
        fps = pair["baseline"].fps
        summary = (f"{display_name}, style {style}: {len(audio) / SAMPLING_RATE:.2f} s of speech, "
                   f"{len(vertices['baseline'])} frames at {fps:g} fps; predicted in {predicted:.1f} s, "
                   f"rendered in {total - predicted:.1f} s.")
        return str(videos[0]), str(videos[1]), [str(f) for f in files], summary


def build_page(demo: Demo):
    import gradio as gr

    def animate(audio_path, display_name, style):
        try:
            return demo.animate(audio_path, display_name, style)
        except UnusableInput as error:
            raise gr.Error(str(error), duration=None) from None
        except ValueError as error:  # e.g. a model whose output cannot be drawn
            raise gr.Error(f"Could not animate this input: {error}", duration=None) from None

    def update_styles(display_name):
        styles = demo.styles(display_name)
        return gr.Dropdown(choices=styles, value=styles[0])

    first = next(iter(demo.names))
    with gr.Blocks(title="Wav2Sem demo") as page:
        gr.Markdown(
            "# Wav2Sem: speech-driven 3D facial animation\n"
            "Record or upload speech, pick an animation model and a speaking style, and compare the model with a "
            "plain audio encoder (left) with the same model with Wav2Sem fused into its encoder (right). The models "
            "here are tiny ones trained for a few CPU steps on the package's synthetic sample, to show the pipeline; "
            f"they do not lip-sync well. {MIN_SECONDS:g} to {demo.max_seconds:g} s of speech."
        )
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech", elem_id="speech")
            with gr.Column():
                model = gr.Dropdown(choices=list(demo.names), value=first, label="Animation model", elem_id="model")
                style = gr.Dropdown(choices=demo.styles(first), value=demo.styles(first)[0], label="Speaking style",
                                    elem_id="style")
                button = gr.Button("Animate", variant="primary", elem_id="animate")
        with gr.Row():
            baseline = gr.Video(label="Baseline (plain encoder)", elem_id="baseline-video", format="mp4",
                                interactive=False, height=demo.video_height + 40)
            wav2sem = gr.Video(label="+ Wav2Sem", elem_id="wav2sem-video", format="mp4", interactive=False,
                               height=demo.video_height + 40)
        summary = gr.Markdown(elem_id="summary")
        files = gr.File(label="Predicted vertices (.npy, frames x vertices*3)", file_count="multiple",
                        elem_id="vertices", interactive=False)
        model.change(update_styles, model, style)
        button.click(animate, [audio, model, style], [baseline, wav2sem, files, summary], concurrency_limit=1)
    return page


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache_dir", type=Path, default=default_cache_dir(),
                        help="where the trained demo models are kept (default ~/.cache/wav2sem-demo)")
    parser.add_argument("--host", default=None, help="address to serve on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--train_steps", type=int, default=60, help="training steps of each demo model (first start)")
    parser.add_argument("--max_seconds", type=float, default=MAX_SECONDS, help="longest speech accepted")
    parser.add_argument("--video_height", type=int, default=320, help="height of the videos in pixels")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the tiny models (1: threads only contend at this size)")
    parser.add_argument("--build_only", action="store_true", help="train and cache the models, then exit")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    started = time.time()
    folders = ensure_models(args.cache_dir, args.train_steps)
    print(f"Demo models ready in {time.time() - started:.1f} s ({args.cache_dir})", flush=True)
    if args.build_only:
        return 0
    import gradio as gr

    output_root = Path(tempfile.gettempdir()) / "wav2sem-demo"
    page = build_page(Demo(folders, output_root, args.max_seconds, args.video_height))
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts: offline
    page.queue().launch(server_name=args.host, server_port=args.port, theme=theme, allowed_paths=[str(output_root)],
                        show_error=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
