"""Animate a face from speech with a trained animation model (a folder or Hub id saved by `train_animation.py`).

    python -m training.animate --model_name_or_path DIR --audio speech.wav --subject NAME --output_dir DIR \
        [--gif] [--video out.mp4] [--seed 0] [--num_inference_steps N]
    wav2sem-animate ...   # the same, installed with the package

Writes `<audio stem>_<subject>.npy` (T, V*3) float32 vertices at the model's frame rate, and a PNG preview of a few
frames (plus a GIF with `--gif`, and with `--video` an H.264 MP4 of the shaded mesh at the model's frame rate with the
speech muxed in, next to the ground truth when there is one: `--ground_truth`, or the `vertices_npy/<stem>.npy` beside
the audio's `wav/` folder in a dataset). The neutral mesh is the subject's template stored with the model
(`templates.pkl`), or `--template` (a `templates.pkl` with `--template_subject`, or a `.npy` of V x 3 / V*3 values)
for a new face. Models that sample (diffusion) get a generator seeded with `--seed` and, when given,
`--num_inference_steps`; `--model` and `--out` are deprecated spellings of `--model_name_or_path` and `--output_dir`.

A model with several dataset heads (UniTalker) animates the head of `--dataset` (default: its first), at that
dataset's frame rate and mesh, for one of its speakers or `--subject pivot` (the common style, for a speaker unseen in
training; give its neutral mesh with `--template`), and long audio in overlapping windows (`predict_long`).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModel

import modeling_wav2sem  # noqa: F401  (registers the model types with the Auto classes)
from modeling_wav2sem.configuration_animation import get_animation_dataset
from modeling_wav2sem.metrics import read_region_file
from .animation.data import read_templates
from .animation.evaluation import sampling_kwargs
from .animation.render import evenly_spaced_frames, read_obj_faces, render_frames_png, render_gif, render_video
from .common.audio import SAMPLING_RATE, decode_audio, normalize
from .common.cli import rename_deprecated_flags

DEPRECATED_FLAGS = {"--model": "--model_name_or_path", "--out": "--output_dir"}


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


def load_template(args, vertice_dim: int, subject: str | None = None) -> np.ndarray:
    """`(V*3,)` neutral mesh from `--template` or the model's `templates.pkl` (`subject`'s, default `--subject`)."""
    source = Path(args.template) if args.template else model_file(args.model_name_or_path, "templates.pkl")
    if source is None:
        raise FileNotFoundError(f"{args.model_name_or_path} has no templates.pkl: pass --template (templates.pkl or .npy).")
    if source.suffix == ".npy":
        template = np.load(source)
    else:
        templates = read_templates(source)
        subject = args.template_subject or subject or args.subject
        if subject not in templates:
            raise ValueError(f"No template for {subject!r} in {source}; it has {', '.join(sorted(templates))}.")
        template = templates[subject]
    template = np.asarray(template, dtype=np.float32).reshape(-1)
    if template.size != vertice_dim:
        raise ValueError(f"The template has {template.size} values; the model predicts {vertice_dim} (V*3).")
    return template


def find_ground_truth(args, target: dict) -> np.ndarray | None:
    """`(T, V*3)` ground-truth vertices at the model's frame rate, from `--ground_truth` or, for a dataset's
    `DIR/wav/NAME.wav`, `DIR/vertices_npy/NAME.npy`; None when there is none (or, found beside the audio, it does not
    fit the model)."""
    given = args.ground_truth is not None
    path = Path(args.ground_truth) if given else Path(args.audio).parent.parent / "vertices_npy" / f"{Path(args.audio).stem}.npy"
    if not path.is_file():
        if given:
            raise FileNotFoundError(f"--ground_truth {path} does not exist.")
        return None
    vertice_dim = target["vertice_dim"]
    vertices = np.load(path).astype(np.float32)
    vertices = vertices.reshape(len(vertices), -1)
    if vertices.shape[1] != vertice_dim:
        if given:
            raise ValueError(f"--ground_truth has {vertices.shape[1]} values a frame; the model predicts {vertice_dim}.")
        return None
    capture_fps, fps = args.ground_truth_fps, target["frame_rate"]
    if capture_fps is None:
        dataset = target["dataset"]
        capture_fps = get_animation_dataset(dataset).capture_fps if dataset else fps
    stride = capture_fps / fps
    if abs(stride - round(stride)) > 1e-6 or round(stride) < 1:
        raise ValueError(f"Ground truth at {capture_fps:g} fps cannot be brought to {fps:g} fps "
                         "by keeping every n-th frame; pass --ground_truth_fps.")
    return vertices[:: int(round(stride))]


def animation_target(model, args) -> dict:
    """What to animate: `dataset` (the head of a several-dataset model, else the model's own dataset if it names one),
    its `frame_rate`, `vertice_dim` and `subjects`, and the `subject` (checked, with a clear error for an unknown one)."""
    config = model.config
    if hasattr(config, "dataset_entry"):  # several dataset heads (UniTalker)
        entry = config.dataset_entry(args.dataset)
        target = {"dataset": entry["name"], "frame_rate": entry["frame_rate"], "vertice_dim": entry["vertice_dim"],
                  "subjects": list(entry["subjects"]) + (["pivot"] if config.pivot_identity else [])}
    else:
        if args.dataset and args.dataset.lower() != str(getattr(config, "dataset", None)).lower():
            raise ValueError(f"--dataset {args.dataset}: {type(model).__name__} has one output head, for "
                             f"{getattr(config, 'dataset', None) or 'its training data'}; drop --dataset.")
        target = {"dataset": getattr(config, "dataset", None), "frame_rate": config.frame_rate,
                  "vertice_dim": config.vertice_dim, "subjects": list(config.train_subjects)}
    subject = args.subject or target["subjects"][0]
    if subject not in target["subjects"]:
        raise ValueError(f"Unknown subject {subject!r}; training subjects: {', '.join(target['subjects'])}.")
    return {**target, "subject": subject}


def animate(args) -> dict:
    model = AutoModel.from_pretrained(args.model_name_or_path).eval()
    if not hasattr(model, "predict"):
        raise ValueError(f"{args.model_name_or_path} is a {type(model).__name__}, not an animation model.")
    kwargs = sampling_kwargs(model, args.seed, args.num_inference_steps)  # a seeded generator where predict samples
    target = animation_target(model, args)
    subject, fps = target["subject"], target["frame_rate"]
    if subject == "pivot" and not (args.template or args.template_subject):
        raise ValueError("--subject pivot is a speaker unseen in training, with no stored neutral mesh: give it with "
                         "--template (templates.pkl with --template_subject, or .npy).")
    template = load_template(args, target["vertice_dim"], subject)
    audio = decode_audio(args.audio, SAMPLING_RATE)
    try:
        do_normalize = AutoFeatureExtractor.from_pretrained(args.model_name_or_path).do_normalize
    except (OSError, ValueError, AttributeError):
        do_normalize = True
    if do_normalize:
        audio = normalize(audio)
    torch.manual_seed(args.seed)
    values, neutral = torch.from_numpy(audio)[None], torch.from_numpy(template)[None]
    with torch.no_grad():
        if hasattr(model, "predict_long"):  # windows over long audio, as the published demo; `predict` for short clips
            output = model.predict_long(values, neutral, subject_index=subject, dataset=target["dataset"])
        else:
            output = model.predict(values, neutral, subject_index=subject, **kwargs)
    vertices = output.vertices[0].float().numpy()

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(args.audio).stem}_{subject}"
    np.save(out / f"{stem}.npy", vertices)
    mesh, lips_file = model_file(args.model_name_or_path, "mesh.obj"), model_file(args.model_name_or_path, "regions/lip_vertices.txt")
    faces = read_obj_faces(mesh) if mesh else None
    lips = read_region_file(lips_file) if lips_file else None
    num_vertices = target["vertice_dim"] // 3
    if faces is not None and (faces.size == 0 or int(faces.max()) >= num_vertices):
        faces, lips = None, None  # the stored mesh is another dataset's (a several-dataset model): draw points
    if lips is not None and len(lips) and int(max(lips)) >= num_vertices:
        lips = None
    indices = evenly_spaced_frames(len(vertices), args.frames)
    written = [out / f"{stem}.npy", render_frames_png(out / f"{stem}.png", {subject: vertices}, indices, faces, lips, fps)]
    if args.gif:
        written.append(render_gif(out / f"{stem}.gif", {subject: vertices}, fps, faces, lips))
    if args.video:
        reference = find_ground_truth(args, target)
        rows = {"prediction": vertices} if reference is None else {"ground truth": reference, "prediction": vertices}
        written.append(render_video(args.video, rows, fps, faces, decode_audio(args.audio, SAMPLING_RATE),
                                    SAMPLING_RATE, lips=lips, height=args.video_height))
    return {"frames": len(vertices), "fps": fps, "files": [str(p) for p in written]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", required=True, help="folder or Hub id saved by train_animation.py")
    parser.add_argument("--audio", required=True, help="speech file (any rate soundfile reads; resampled to 16 kHz)")
    parser.add_argument("--subject", help="training speaker whose speaking style to use (default: the first; "
                                          "'pivot' for a several-dataset model's common style)")
    parser.add_argument("--dataset", help="a several-dataset model's (UniTalker) head to animate, e.g. vocaset or biwi "
                                          "(default: its first)")
    parser.add_argument("--output_dir", required=True, help="output folder")
    parser.add_argument("--template", help="templates.pkl or .npy neutral mesh (default: the model's templates.pkl)")
    parser.add_argument("--template_subject", help="key in --template's templates.pkl (default: --subject)")
    parser.add_argument("--frames", type=int, default=5, help="frames in the PNG preview")
    parser.add_argument("--gif", action="store_true", help="also write an animated GIF")
    parser.add_argument("--video", help="also write an H.264 MP4 with the speech (e.g. out.mp4; needs PyAV: the demo extra)")
    parser.add_argument("--video_height", type=int, default=360, help="height of a video panel in pixels")
    parser.add_argument("--ground_truth", help="(T, V*3) .npy shown next to the prediction in --video (default: the "
                                               "dataset's vertices_npy/<audio stem>.npy when the audio is in DIR/wav/)")
    parser.add_argument("--ground_truth_fps", type=float, help="frame rate of --ground_truth (default: the dataset's "
                                                               "capture rate, e.g. VOCASET 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise of models that sample (diffusion)")
    parser.add_argument("--num_inference_steps", type=int,
                        help="denoising steps of models that sample (default: the model's)")
    return parser.parse_args(rename_deprecated_flags(argv, DEPRECATED_FLAGS, prog=parser.prog))


def main(argv=None) -> int:
    result = animate(parse_args(argv))
    print(f"{result['frames']} frames at {result['fps']:g} fps: " + ", ".join(result["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
