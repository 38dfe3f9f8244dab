"""Train a speech-driven facial animation model (FaceFormer) on VOCASET / BIWI with a plain or a Wav2Sem-fused encoder.

    # the baseline, and the same with Wav2Sem (one argument apart)
    accelerate launch training/train_animation.py --model faceformer --dataset vocaset --data_dir D \
        --audio_encoder facebook/wav2vec2-base-960h
    accelerate launch training/train_animation.py --model faceformer --dataset vocaset --data_dir D \
        --audio_encoder facebook/wav2vec2-base-960h --wav2sem ORG/wav2sem-c

Trains with Adam (lr 1e-4) and MSE as FaceFormer does (batch size 1, autoregressive decoding, 100 epochs by default),
reports the validation loss every epoch, then scores the test split (LVE, MVE, FDD), renders predicted vs
ground-truth frames (PNG) and one sequence (GIF), and saves the model with `save_pretrained` (safetensors), its
feature extractor, the templates and region files, and a model card. `--push_to_hub --hub_model_id ORG/NAME` uploads it.
"""

import dataclasses
import json
import math
import os
import pickle
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch training/train_animation.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from huggingface_hub import EvalResult, ModelCardData
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, HfArgumentParser, Wav2Vec2FeatureExtractor

from modeling_wav2sem import FaceFormerConfig, FaceFormerForAnimation, Wav2SemFusedEncoder
from modeling_wav2sem.metrics import lip_vertex_error, mean_vertex_error, upper_face_dynamics_deviation
from training.animation_data import AnimationDataset, Regions, collate_animation, default_animation_dir, load_templates
from training.animation_render import evenly_spaced_frames, read_obj_faces, render_frames_png, render_gif
from training.runtime import end_training, keep_freed_memory
from training.hub import HubUploadError, push_folder_to_hub, write_model_card
from training.pretrain import JsonLinesLogger

ANIMATION_MODELS = {"faceformer": (FaceFormerConfig, FaceFormerForAnimation)}


@dataclasses.dataclass
class AnimationArguments:
    audio_encoder: str = dataclasses.field(
        metadata={"help": "AutoModel folder or Hub id: a wav2vec2/HuBERT/WavLM checkpoint, or a Wav2SemFusedEncoder"}
    )
    wav2sem: str | None = dataclasses.field(
        default=None, metadata={"help": "Wav2Sem folder or Hub id: fuse it into --audio_encoder (the +Wav2Sem model)"}
    )
    fusion_init: str = dataclasses.field(default="normal", metadata={"help": "FC1 init with --wav2sem: normal|zeros"})
    model: str = dataclasses.field(default="faceformer", metadata={"help": f"one of {sorted(ANIMATION_MODELS)}"})
    dataset: str = dataclasses.field(default="vocaset", metadata={"help": "vocaset or biwi (layout, splits, rates)"})
    data_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "processed dataset folder (wav/, vertices_npy/, templates.pkl); default: the "
                                        "embedded synthetic VOCASET sample"}
    )
    output_dir: str | None = dataclasses.field(default=None, metadata={"help": "default: <model>-<dataset>"})
    num_train_epochs: int = dataclasses.field(default=100, metadata={"help": "FaceFormer: 100"})
    max_train_steps: int | None = dataclasses.field(default=None, metadata={"help": "overrides the epochs"})
    learning_rate: float = 1e-4
    per_device_train_batch_size: int = dataclasses.field(default=1, metadata={"help": "FaceFormer: 1"})
    gradient_accumulation_steps: int = 1
    teacher_forcing: bool = dataclasses.field(
        default=False, metadata={"help": "decode from the ground truth in parallel (FaceFormer trains without)"}
    )
    mixed_precision: str | None = dataclasses.field(default="no", metadata={"help": "no|bf16 (never fp16 on CPU)"})
    seed: int = 0
    max_test_sequences: int | None = dataclasses.field(default=None, metadata={"help": "score only the first N"})
    eval_conditions: str = dataclasses.field(
        default="all", metadata={"help": "speakers unseen in training are predicted with every training style (all, "
                                         "FaceFormer's test) or only the first (first)"}
    )
    render_frames: int = dataclasses.field(default=5, metadata={"help": "frames in the PNG comparison (0: none)"})
    render_gif: bool = dataclasses.field(default=True, metadata={"help": "animated GIF of one test sequence"})
    logging_steps: int = 10
    cpu: bool = False
    cpu_threads: int | None = None
    keep_freed_memory: bool = dataclasses.field(
        default=True,
        metadata={"help": "glibc malloc keeps freed memory for large tensors instead of unmapping it (faster steps on CPU)"},
    )
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False
    hub_token: str | None = None


def parse_args(argv=None) -> AnimationArguments:
    (args,) = HfArgumentParser(AnimationArguments).parse_args_into_dataclasses(args=argv)
    if args.model not in ANIMATION_MODELS:
        raise ValueError(f"--model must be one of {sorted(ANIMATION_MODELS)}, got {args.model!r}.")
    if args.mixed_precision == "fp16":
        raise ValueError("fp16 is not supported here (unusably slow on CPU); use --mixed_precision bf16 or no.")
    if args.eval_conditions not in ("all", "first"):
        raise ValueError("--eval_conditions must be 'all' or 'first'.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME.")
    args.data_dir = args.data_dir or str(default_animation_dir())
    args.output_dir = args.output_dir or f"{args.model}-{args.dataset}"
    return args


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


def load_audio_encoder(args: AnimationArguments):
    """The baseline encoder (`--audio_encoder`), or the same fused with `--wav2sem` into a `Wav2SemFusedEncoder`."""
    if args.wav2sem:
        return Wav2SemFusedEncoder.from_backbone_and_wav2sem(args.audio_encoder, args.wav2sem, fusion_init=args.fusion_init)
    return AutoModel.from_pretrained(args.audio_encoder)


def encoder_layerdrop(name_or_path: str) -> float:
    """The LayerDrop probability of the speech model in `name_or_path` (the backbone of a fused encoder)."""
    config = AutoConfig.from_pretrained(name_or_path)
    config = getattr(config, "audio_config", None) or config
    return float(getattr(config, "layerdrop", 0.0) or 0.0)


def load_feature_extractor(name_or_path: str):
    """The encoder's feature extractor, or wav2vec2-base-960h's settings (16 kHz, normalised) when it has none."""
    try:
        return AutoFeatureExtractor.from_pretrained(name_or_path)
    except (OSError, ValueError):
        return Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)


def build_animation_model(args: AnimationArguments, train_set: AnimationDataset):
    """The animation model around the loaded encoder; mesh size and speaking styles come from the data."""
    config_class, model_class = ANIMATION_MODELS[args.model]
    encoder = load_audio_encoder(args)
    vertice_dim = next(iter(train_set.templates.values())).size
    config = config_class(
        audio_config=encoder.config,
        dataset=args.dataset,
        vertice_dim=vertice_dim,
        train_subjects=train_set.train_subjects,
    )
    return model_class(config, audio_encoder=encoder)


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------------


def conditions_for(subject_index: int, num_subjects: int, mode: str) -> list[int]:
    """Styles to predict a sequence with: its own speaker's when seen in training, else every training style (or the
    first), as FaceFormer's test does for VOCASET's unseen test speakers."""
    if subject_index >= 0:
        return [subject_index]
    return list(range(num_subjects)) if mode == "all" else [0]


def _repeat(item: dict, conditions: list[int]) -> dict:
    """One item as a batch of `len(conditions)` copies, one per speaking style."""
    count = len(conditions)
    return {
        "input_values": torch.from_numpy(item["input_values"])[None].expand(count, -1),
        "template": torch.from_numpy(item["template"])[None].expand(count, -1),
        "labels": torch.from_numpy(item["labels"])[None].expand(count, -1, -1),
        "subject_index": torch.tensor(conditions),
    }


@torch.no_grad()
def validation_loss(model, dataset: AnimationDataset, device, autocast, mode: str) -> float:
    """Teacher-forced MSE over the split, averaged over the styles of `conditions_for` (FaceFormer's validation)."""
    was_training = model.training
    model.eval()
    losses = []
    for item in dataset:
        batch = _repeat(item, conditions_for(item["subject_index"], model.config.num_subjects, mode))
        with autocast():
            output = model(**{k: v.to(device) for k, v in batch.items()}, teacher_forcing=True)
        losses.append(float(output.loss))
    model.train(was_training)
    return float(np.mean(losses))


@torch.no_grad()
def predict_test_split(model, dataset: AnimationDataset, device, autocast, mode: str, limit: int | None = None):
    """Autoregressive predictions for every test sequence and style: a list of dicts with `name`, `subject`,
    `condition`, `prediction` (T, V*3), `reference` and `template`. Each prediction has the reference's frame count."""
    model.eval()
    results = []
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in tqdm(range(count), desc="test", leave=False):
        item = dataset[index]
        conditions = conditions_for(item["subject_index"], model.config.num_subjects, mode)
        batch = _repeat(item, conditions)
        with autocast():
            output = model.predict(
                batch["input_values"].to(device),
                batch["template"].to(device),
                subject_index=batch["subject_index"].to(device),
                num_frames=len(item["labels"]),
            )
        for row, condition in enumerate(conditions):
            results.append({
                "name": item["name"],
                "subject": item["subject"],
                "condition": model.config.train_subjects[condition],
                "prediction": output.vertices[row].float().cpu().numpy(),
                "reference": item["labels"],
                "template": item["template"],
            })
    return results


def score_predictions(results: list[dict], regions: Regions, lve_scale: float, fdd_scale: float) -> dict:
    """LVE and MVE (pooled over all frames of all predictions), FDD (mean over predictions), in the reported units."""
    predictions = [r["prediction"] for r in results]
    references = [r["reference"] for r in results]
    if regions.lip is None:
        raise ValueError("LVE needs lip vertex indices: put regions/lip_vertices.txt in the data folder.")
    metrics = {
        "lve": lip_vertex_error(predictions, references, regions.lip, scale=lve_scale),
        "mve": mean_vertex_error(predictions, references, scale=lve_scale),
        "fdd": None,
        "num_sequences": len({r["name"] for r in results}),
        "num_predictions": len(results),
        "num_frames": int(sum(len(r["reference"]) for r in results)),
    }
    if regions.upper_face is not None:
        metrics["fdd"] = upper_face_dynamics_deviation(
            predictions, references, [r["template"] for r in results], regions.upper_face, scale=fdd_scale
        )
    return metrics


def render_results(results: list[dict], data_dir: Path, out_dir: Path, regions: Regions, fps: float, frames: int, gif: bool):
    """PNG grid (ground truth over prediction) of the first test prediction, and a GIF of it; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mesh = data_dir / "mesh.obj"
    faces = read_obj_faces(mesh) if mesh.is_file() else None
    first = results[0]
    rows = {"ground truth": first["reference"], "prediction": first["prediction"]}
    stem = f"{first['name']}_condition_{first['condition']}"
    paths = []
    if frames:
        indices = evenly_spaced_frames(len(first["reference"]), frames)
        paths.append(render_frames_png(out_dir / f"{stem}.png", rows, indices, faces, regions.lip, fps))
    if gif:
        paths.append(render_gif(out_dir / f"{stem}.gif", rows, fps, faces, regions.lip))
    return paths


# ---------------------------------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------------------------------


def copy_data_files(data_dir: Path, output_dir: Path, subjects: list[str]):
    """The training speakers' templates (so `training.animate` needs only the model folder), region files, mesh."""
    templates = load_templates(data_dir)
    with open(output_dir / "templates.pkl", "wb") as handle:
        pickle.dump({s: templates[s].reshape(-1, 3) for s in subjects if s in templates}, handle)
    for relative in ("regions/lip_vertices.txt", "regions/upper_face_vertices.txt", "mesh.obj"):
        source = data_dir / relative
        if source.is_file():
            (output_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, output_dir / relative)


def write_animation_card(args, output_dir: Path, model, datasets_: dict, metrics: dict, train_time: float, hardware: str):
    repo_id = args.hub_model_id or output_dir.name
    dataset_name = {"vocaset": "VOCASET", "biwi": "BIWI"}[args.dataset]
    data_is_sample = Path(args.data_dir).resolve() == default_animation_dir().resolve()
    scale_of = {"lve": datasets_["train"].layout.lve_scale, "fdd": datasets_["train"].layout.fdd_scale}
    base_models = [m for m in (args.audio_encoder, args.wav2sem) if m and not Path(m).exists()]
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        tags=["wav2sem", "faceformer", "speech-driven-facial-animation", "3d", "audio"],
        datasets=[dataset_name.lower()],
        base_model=base_models or None,
        model_name=repo_id,
        eval_results=[
            EvalResult(
                task_type="speech-driven-facial-animation", dataset_type=dataset_name.lower(), dataset_name=dataset_name,
                dataset_split="test", metric_type=key, metric_name=f"{key.upper()} (x{scale_of.get(key, scale_of['lve']):g})",
                metric_value=round(metrics[key], 5),
            )
            for key in ("lve", "mve", "fdd") if metrics.get(key) is not None
        ],
    )
    decoding = "teacher forcing" if args.teacher_forcing else "autoregressive decoding during training, as FaceFormer"
    write_model_card(
        output_dir,
        "faceformer",
        card_data,
        model_name=repo_id,
        repo_id=repo_id,
        dataset_name=dataset_name + (" (synthetic sample in its layout)" if data_is_sample else ""),
        audio_encoder=args.audio_encoder,
        wav2sem=args.wav2sem,
        first_subject=model.config.train_subjects[0],
        subjects=", ".join(model.config.train_subjects),
        vertice_dim=model.config.vertice_dim,
        data_description=f"{dataset_name} processed layout from `{args.data_dir}`" + (
            ": the synthetic lip dataset embedded in the wav2sem package (procedural mesh driven by espeak-ng "
            "phoneme timings), not real captures" if data_is_sample else ""
        ),
        num_train=len(datasets_["train"]),
        num_val=len(datasets_["val"]) if datasets_.get("val") is not None else 0,
        num_test=metrics["num_sequences"],
        decoding=decoding,
        optimisation=(
            f"Adam lr {args.learning_rate}, batch {args.per_device_train_batch_size} x "
            f"{args.gradient_accumulation_steps} accumulation, {args.num_train_epochs} epochs"
            + (f" (capped at {args.max_train_steps} steps)" if args.max_train_steps else "")
            + f", {args.mixed_precision} precision, seed {args.seed}"
        ),
        hardware=hardware,
        train_time=f"{train_time / 60:.1f} minutes",
        eval_description=f"test split, {metrics['num_sequences']} sequences, {metrics['num_predictions']} predictions",
        lve_scale=f"{scale_of['lve']:g}",
        fdd_scale=f"{scale_of['fdd']:g}",
        metrics=metrics,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.keep_freed_memory:
        keep_freed_memory()
    output_dir = Path(args.output_dir)
    data_dir = Path(args.data_dir)
    accelerator = Accelerator(
        cpu=args.cpu,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        # LayerDrop (0.1 in wav2vec2-base-960h) skips whole encoder layers, so under DDP some get no gradient in a step.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=encoder_layerdrop(args.audio_encoder) > 0)],
    )
    set_seed(args.seed)
    if accelerator.device.type == "cpu":
        torch.set_num_threads(args.cpu_threads or max(1, (os.cpu_count() or 1) // accelerator.num_processes))
    main_process = accelerator.is_main_process

    def say(message: str):
        if main_process:
            tqdm.write(message)

    extractor = load_feature_extractor(args.audio_encoder)
    normalize_audio = bool(getattr(extractor, "do_normalize", True))
    datasets_ = {"train": AnimationDataset(data_dir, args.dataset, "train", normalize_audio=normalize_audio)}
    train_subjects = datasets_["train"].train_subjects
    for split in ("val", "test"):
        try:
            datasets_[split] = AnimationDataset(data_dir, args.dataset, split, train_subjects, normalize_audio=normalize_audio)
        except ValueError as error:
            if split == "test":
                raise
            say(f"No validation: {error}")
            datasets_[split] = None
    model = build_animation_model(args, datasets_["train"])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(
        f"Data: {len(datasets_['train'])} train / {len(datasets_['val'] or [])} val / {len(datasets_['test'])} test "
        f"sequences from {data_dir}; model {args.model} with {type(model.audio_encoder).__name__} "
        f"({sum(p.numel() for p in model.parameters()):,} parameters, {trainable:,} trainable)"
    )

    generator = torch.Generator().manual_seed(args.seed)
    train_loader = torch.utils.data.DataLoader(
        datasets_["train"], batch_size=args.per_device_train_batch_size, shuffle=True, generator=generator,
        collate_fn=collate_animation,
    )
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    total_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    unwrapped = accelerator.unwrap_model(model)
    log = JsonLinesLogger(output_dir / "metrics.jsonl", main_process)

    started = time.time()
    step, progress = 0, tqdm(total=total_steps, desc="train", disable=not main_process)
    for epoch in range(num_epochs):
        model.train()
        running = []
        for batch in train_loader:
            with accelerator.accumulate(model), accelerator.autocast():
                inputs = {k: v for k, v in batch.items() if k not in ("names", "subjects")}
                output = model(**inputs, teacher_forcing=args.teacher_forcing, use_cache=True)
                accelerator.backward(output.loss)
                optimizer.step()
                optimizer.zero_grad()
            running.append(output.loss.item())
            if accelerator.sync_gradients:
                step += 1
                progress.update(1)
                if step % args.logging_steps == 0:
                    loss = float(np.mean(running[-args.logging_steps * args.gradient_accumulation_steps :]))
                    progress.set_postfix(loss=f"{loss:.3e}")
                    log.log({"step": step, "epoch": epoch, "train_loss": loss})
            if step >= total_steps:
                break
        record = {"step": step, "epoch": epoch + 1, "train_loss_epoch": float(np.mean(running))}
        if datasets_["val"] is not None and main_process:
            record["val_loss"] = validation_loss(
                unwrapped, datasets_["val"], accelerator.device, accelerator.autocast, args.eval_conditions
            )
        log.log(record)
        say(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4e}" for k, v in record.items() if "loss" in k))
        if step >= total_steps:
            break
    progress.close()
    train_time = time.time() - started

    accelerator.wait_for_everyone()
    summary = {}
    if main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        layout = datasets_["test"].layout
        regions = Regions.from_folder(data_dir)
        results = predict_test_split(
            unwrapped, datasets_["test"], accelerator.device, accelerator.autocast, args.eval_conditions,
            args.max_test_sequences,
        )
        metrics = score_predictions(results, regions, layout.lve_scale, layout.fdd_scale)
        say(
            f"test ({metrics['num_sequences']} sequences, {metrics['num_predictions']} predictions): "
            f"LVE {metrics['lve']:.4f} (x{layout.lve_scale:g}) MVE {metrics['mve']:.4f} (x{layout.lve_scale:g}) "
            + (f"FDD {metrics['fdd']:.4f} (x{layout.fdd_scale:g})" if metrics["fdd"] is not None else "FDD n/a")
        )
        fps = unwrapped.config.frame_rate
        renders = render_results(results, data_dir, output_dir / "renders", regions, fps, args.render_frames, args.render_gif)
        unwrapped.save_pretrained(output_dir)
        extractor.save_pretrained(output_dir)
        copy_data_files(data_dir, output_dir, unwrapped.config.train_subjects)
        device = "CPU" if accelerator.device.type == "cpu" else accelerator.device.type.upper()
        write_animation_card(
            args, output_dir, unwrapped, datasets_, metrics, train_time, f"{accelerator.num_processes} x {device}"
        )
        summary = {
            "metrics": metrics,
            "train_time_s": round(train_time, 1),
            "steps": step,
            "renders": [str(p) for p in renders],
            "audio_encoder": args.audio_encoder,
            "wav2sem": args.wav2sem,
            "seed": args.seed,
        }
        (output_dir / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
        say(f"Saved to {output_dir}" + (f" (renders: {', '.join(p.name for p in renders)})" if renders else ""))
        if args.push_to_hub:
            try:
                url = push_folder_to_hub(output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private)
                say(f"Pushed to {url}")
            except HubUploadError as error:
                say(f"Push failed: {error}")
                summary["push_error"] = str(error)
    del model, optimizer  # the DDP wrapper must go before its process group (see end_training, which waits for all)
    end_training(accelerator)
    return summary


if __name__ == "__main__":
    main()
