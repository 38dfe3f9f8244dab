"""Animate a face from speech with a trained animation model (a folder or Hub id saved by `train_animation.py`).

    python -m training.animate --model DIR --audio speech.wav --subject NAME --out DIR [--gif]

Writes `<audio stem>_<subject>.npy` (T, V*3) float32 vertices at the model's frame rate, and a PNG preview of a few
frames (plus a GIF with `--gif`). The neutral mesh is the subject's template stored with the model (`templates.pkl`),
or `--template` (a `templates.pkl` with `--template_subject`, or a `.npy` of V x 3 / V*3 values) for a new face.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModel

import modeling_wav2sem  # noqa: F401  (registers the model types with the Auto classes)
from modeling_wav2sem.metrics import read_region_file
from training.animation.data import read_templates
from training.animation.render import evenly_spaced_frames, read_obj_faces, render_frames_png, render_gif
from training.common.audio import SAMPLING_RATE, decode_audio, normalize


def model_file(model: str, filename: str) -> Path | None:
    """A file saved next to the model: in the folder, or downloaded from the Hub repo; None when it has none."""
    if Path(model).is_dir():
        path = Path(model) / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(model, filename))
    except EntryNotFoundError:
        return None


def load_template(args, vertice_dim: int) -> np.ndarray:
    """`(V*3,)` neutral mesh from `--template` or the model's `templates.pkl`."""
    source = Path(args.template) if args.template else model_file(args.model, "templates.pkl")
    if source is None:
        raise FileNotFoundError(f"{args.model} has no templates.pkl: pass --template (templates.pkl or .npy).")
    if source.suffix == ".npy":
        template = np.load(source)
    else:
        templates = read_templates(source)
        subject = args.template_subject or args.subject
        if subject not in templates:
            raise ValueError(f"No template for {subject!r} in {source}; it has {', '.join(sorted(templates))}.")
        template = templates[subject]
    template = np.asarray(template, dtype=np.float32).reshape(-1)
    if template.size != vertice_dim:
        raise ValueError(f"The template has {template.size} values; the model predicts {vertice_dim} (V*3).")
    return template


def animate(args) -> dict:
    model = AutoModel.from_pretrained(args.model).eval()
    if not hasattr(model, "predict"):
        raise ValueError(f"{args.model} is a {type(model).__name__}, not an animation model.")
    subject = args.subject or model.config.train_subjects[0]
    model.config.subject_id(subject)  # a clear error for an unknown speaking style
    template = load_template(args, model.config.vertice_dim)
    audio = decode_audio(args.audio, SAMPLING_RATE)
    try:
        do_normalize = AutoFeatureExtractor.from_pretrained(args.model).do_normalize
    except (OSError, ValueError, AttributeError):
        do_normalize = True
    if do_normalize:
        audio = normalize(audio)
    with torch.no_grad():
        output = model.predict(torch.from_numpy(audio)[None], torch.from_numpy(template)[None], subject_index=subject)
    vertices = output.vertices[0].float().numpy()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(args.audio).stem}_{subject}"
    np.save(out / f"{stem}.npy", vertices)
    mesh, lips_file = model_file(args.model, "mesh.obj"), model_file(args.model, "regions/lip_vertices.txt")
    faces = read_obj_faces(mesh) if mesh else None
    lips = read_region_file(lips_file) if lips_file else None
    fps = model.config.frame_rate
    indices = evenly_spaced_frames(len(vertices), args.frames)
    written = [out / f"{stem}.npy", render_frames_png(out / f"{stem}.png", {subject: vertices}, indices, faces, lips, fps)]
    if args.gif:
        written.append(render_gif(out / f"{stem}.gif", {subject: vertices}, fps, faces, lips))
    return {"frames": len(vertices), "fps": fps, "files": [str(p) for p in written]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="folder or Hub id saved by training/train_animation.py")
    parser.add_argument("--audio", required=True, help="speech file (any rate soundfile reads; resampled to 16 kHz)")
    parser.add_argument("--subject", help="training speaker whose speaking style to use (default: the first)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--template", help="templates.pkl or .npy neutral mesh (default: the model's templates.pkl)")
    parser.add_argument("--template_subject", help="key in --template's templates.pkl (default: --subject)")
    parser.add_argument("--frames", type=int, default=5, help="frames in the PNG preview")
    parser.add_argument("--gif", action="store_true", help="also write an animated GIF")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    result = animate(parse_args(argv))
    print(f"{result['frames']} frames at {result['fps']:g} fps: " + ", ".join(result["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
