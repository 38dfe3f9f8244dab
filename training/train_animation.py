"""Train, score and push a speech-driven 3D facial animation model (FaceFormer, VOCA, ...) with a plain or a
Wav2Sem-fused audio encoder: one runner for every model, a thin recipe per model (`training/animation/recipes.py`).

    # the baseline, and the same with Wav2Sem (one argument apart)
    accelerate launch training/train_animation.py --model faceformer --dataset vocaset --data_dir D \
        --audio_encoder facebook/wav2vec2-base-960h
    accelerate launch training/train_animation.py --model faceformer --dataset vocaset --data_dir D \
        --audio_encoder facebook/wav2vec2-base-960h --wav2sem ORG/wav2sem-c
    accelerate launch training/train_animation.py --model voca ... --resume_from_checkpoint latest
    # a two-stage model: both stages in one run (the default), or one at a time
    accelerate launch training/train_animation.py --model codetalker ... [--stage all]
    accelerate launch training/train_animation.py --model codetalker ... --stage vqvae --output_dir OUT
    accelerate launch training/train_animation.py --model codetalker ... --stage predictor --vqvae OUT/vqvae

Trains with the model's published optimisation (its recipe's defaults, overridable), in length-grouped batches with
masks, checkpointing with `accelerator.save_state` (resumable after a crash, same data order and losses); reports
the validation loss every epoch; then scores the test split with the same protocol for every model (LVE, MVE, FDD;
unseen speakers under every training style), renders predicted vs ground-truth frames (PNG, GIF), and saves the model
with `save_pretrained` (safetensors, config, model code, its feature extractor), the training templates and region
files, a model card, the data report and the metrics. `--push_to_hub --hub_model_id ORG/NAME` uploads the folder.

A model with several training stages (its recipe's `stages`) trains them in order, each with its own model, optimiser,
checkpoints (`OUTPUT/<stage>/checkpoints`, the last stage's in `OUTPUT/checkpoints`), metrics log and resume; every
intermediate stage's model is saved to `OUTPUT/<stage>/` and feeds the next; only the last stage is scored, rendered,
carded and saved to `OUTPUT/`. A resumed run skips the stages already complete.
"""

import dataclasses
import importlib.util
import inspect
import json
import math
import os
import pickle
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch training/train_animation.py` runs this file as a script:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # make the checkout's package importable
    __package__ = "training"  # and resolve the relative imports below in it (PEP 366)

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from huggingface_hub import EvalResult, ModelCardData
from tqdm.auto import tqdm
from transformers import AutoConfig, HfArgumentParser, Wav2Vec2FeatureExtractor

from modeling_wav2sem import Wav2SemFusedEncoder
from modeling_wav2sem.configuration_animation import get_animation_dataset
from .animation.data import (
    AnimationDataset,
    DatasetMixture,
    Regions,
    collate_animation,
    default_animation_dir,
    load_templates,
)
from .animation.evaluation import (
    predict_test_split,
    sampling_kwargs,
    score_predictions,
    sequence_lip_errors,
    validation_loss,
)
from .animation.recipes import (
    ANIMATION_RECIPES,
    AnimationRecipe,
    AnimationStage,
    StageContext,
    get_recipe,
    stage_learning_rate,
)
from .animation.render import evenly_spaced_frames, read_obj_faces, render_frames_png, render_gif, render_video
from .common.audio import SAMPLING_RATE
from .common.checkpoints import checkpoint_step, resolve_checkpoint, save_checkpoint
from .common.hub import HubUploadError, push_folder_to_hub, resolve_token, write_model_card
from .common.metrics_log import JsonLinesLogger
from .common.runtime import CpuThreads, end_training, keep_freed_memory, widen_onednn_primitive_cache
from .common.sampling import DatasetGroupedBatchSampler, LengthGroupedBatchSampler


@dataclasses.dataclass
class AnimationArguments:
    audio_encoder: str = dataclasses.field(
        metadata={"help": "AutoModel folder or Hub id: a wav2vec2/HuBERT/WavLM checkpoint, or a Wav2SemFusedEncoder"}
    )
    wav2sem: str | None = dataclasses.field(
        default=None, metadata={"help": "Wav2Sem folder or Hub id: fuse it into --audio_encoder (the +Wav2Sem model)"}
    )
    fusion_init: str = dataclasses.field(default="normal", metadata={"help": "FC1 init with --wav2sem: normal|zeros"})
    model: str = dataclasses.field(default="faceformer", metadata={"help": f"one of {sorted(ANIMATION_RECIPES)}"})
    dataset: str = dataclasses.field(default="vocaset", metadata={"help": "vocaset or biwi (layout, splits, rates)"})
    preset: str | None = dataclasses.field(
        default=None, metadata={"help": "the model config's preset (default: the dataset's, e.g. voca: vocaset-30fps)"}
    )
    data_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "processed dataset folder (wav/, vertices_npy/, templates.pkl); default: the "
                                        "embedded synthetic sample of --dataset"}
    )
    datasets: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "several datasets in one run, for models that take a mixture (unitalker): "
                                        "NAME=DIR ... (NAME alone: its embedded sample), e.g. --datasets "
                                        "vocaset=D1 biwi=D2; in place of --dataset / --data_dir"}
    )
    dataset_repeats: list[str] | None = dataclasses.field(
        default=None, metadata={"help": "per-dataset oversampling with --datasets: NAME=N, each of its sequences N "
                                        "times an epoch (published UniTalker: biwi=10 vocaset=5); default 1"}
    )
    max_clip_seconds: float | None = dataclasses.field(
        default=None, metadata={"help": "cut longer clips (audio and frames) to this many seconds, counted in "
                                        "data_report.json (published UniTalker: 20); default: no truncation"}
    )
    output_dir: str | None = dataclasses.field(default=None, metadata={"help": "default: <model>-<dataset>"})
    num_train_epochs: int | None = dataclasses.field(default=None, metadata={"help": "default: the model's recipe"})
    max_train_steps: int | None = dataclasses.field(default=None, metadata={"help": "overrides the epochs"})
    learning_rate: float | None = dataclasses.field(default=None, metadata={"help": "default: the model's recipe"})
    per_device_train_batch_size: int | None = dataclasses.field(default=None, metadata={"help": "default: recipe's"})
    gradient_accumulation_steps: int = 1
    stage: str = dataclasses.field(
        default="all", metadata={"help": "the training stage(s) to run: all (in order) or one stage's name (codetalker: "
                                         "vqvae, predictor)"}
    )
    vqvae: str | None = dataclasses.field(
        default=None, metadata={"help": "a trained stage-1 VQ-VAE folder (codetalker --stage predictor)"}
    )
    config_overrides: str | None = dataclasses.field(
        default=None, metadata={"help": "JSON of config fields over the preset, e.g. '{\"feature_dim\": 64, "
                                        "\"vqvae_config\": {\"hidden_size\": 64}}'"}
    )
    teacher_forcing: bool = dataclasses.field(
        default=False, metadata={"help": "FaceFormer: decode from the ground truth in parallel (it trains without)"}
    )
    mixed_precision: str | None = dataclasses.field(default="no", metadata={"help": "no|bf16 (never fp16 on CPU)"})
    seed: int = 0
    checkpointing_steps: int = dataclasses.field(
        default=0, metadata={"help": "save the training state every N steps (0: at the end of every epoch)"}
    )
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: str | None = dataclasses.field(default=None, metadata={"help": "'latest' or a folder"})
    max_test_sequences: int | None = dataclasses.field(default=None, metadata={"help": "score only the first N"})
    eval_conditions: str = dataclasses.field(
        default="all", metadata={"help": "unseen speakers: predicted with every training style (all) or the first"}
    )
    num_inference_steps: int | None = dataclasses.field(
        default=None, metadata={"help": "diffusion models: sampler steps at test time (default: the model's, the "
                                        "published count); the samples are seeded with --seed"}
    )
    render_frames: int = dataclasses.field(default=5, metadata={"help": "frames in the PNG comparison (0: none)"})
    render_gif: bool = dataclasses.field(default=True, metadata={"help": "animated GIF of one test sequence"})
    render_video: bool = dataclasses.field(
        default=importlib.util.find_spec("av") is not None,
        metadata={"help": "MP4 with the speech of one test sequence, ground truth beside prediction (needs PyAV)"},
    )
    logging_steps: int = 10
    cpu: bool = False
    cpu_threads: int | None = dataclasses.field(
        default=None,
        metadata={"help": "default: the cores other processes leave free, re-checked every 20 s (cores / processes "
                  "for several); 0: leave torch's default"},
    )
    keep_freed_memory: bool = dataclasses.field(
        default=True, metadata={"help": "glibc malloc keeps freed memory for large tensors (faster steps on CPU)"}
    )
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private_repo: bool = False
    hub_token: str | None = None


def parse_args(argv=None) -> AnimationArguments:
    (args,) = HfArgumentParser(AnimationArguments).parse_args_into_dataclasses(args=argv)
    recipe = get_recipe(args.model)
    args.model = recipe.name
    args.dataset_dirs = resolve_datasets(args, recipe)  # {name: folder}, in order; the first is --dataset's
    args.dataset, args.data_dir = next(iter(args.dataset_dirs.items()))
    args.dataset_repeat_counts = resolve_repeats(args)
    if args.max_clip_seconds is not None and args.max_clip_seconds <= 0:
        raise ValueError("--max_clip_seconds must be > 0 (leave it out for no truncation).")
    args.preset = recipe.preset_for(args.dataset, args.preset)
    stages = recipe.stages_to_run(args.stage)  # a clear error for an unknown stage
    # The settings the command line gave: a stage's own defaults apply only to the others.
    args.explicit_settings = {key for key in recipe.defaults if getattr(args, key) is not None}
    for key, value in recipe.defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.config_overrides:
        try:
            overrides = json.loads(args.config_overrides)
        except json.JSONDecodeError as error:
            raise ValueError(f"--config_overrides is not valid JSON: {error}") from None
        if not isinstance(overrides, dict):
            raise ValueError("--config_overrides must be a JSON object of config fields.")
    given = {"vqvae": args.vqvae}
    for stage in stages:
        for need in stage.needs:
            if need not in {s.name for s in stages} and not given.get(need):
                raise ValueError(f"--stage {stage.name} needs a trained {need} model: pass --{need} FOLDER.")
    if args.mixed_precision == "fp16":
        raise ValueError("fp16 is not supported here (unusably slow on CPU); use --mixed_precision bf16 or no.")
    if args.eval_conditions not in ("all", "first"):
        raise ValueError("--eval_conditions must be 'all' or 'first'.")
    if args.num_inference_steps is not None:  # refused now, not after training
        if "num_inference_steps" not in inspect.signature(recipe.model_class.predict).parameters:
            raise ValueError(f"--num_inference_steps: {recipe.display_name} does not sample; leave the flag out.")
        if args.num_inference_steps < 1:
            raise ValueError("--num_inference_steps must be >= 1.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME.")
    if args.per_device_train_batch_size < 1 or args.gradient_accumulation_steps < 1:
        raise ValueError("--per_device_train_batch_size and --gradient_accumulation_steps must be >= 1.")
    args.output_dir = args.output_dir or f"{args.model}-{'+'.join(args.dataset_dirs)}"
    return args


def resolve_datasets(args: AnimationArguments, recipe: AnimationRecipe) -> dict[str, str]:
    """`{name: folder}` of the run's datasets in order: `--datasets NAME=DIR ...`, else `--dataset` / `--data_dir`
    (a name alone: its embedded synthetic sample). Several only for a recipe with `per_dataset`."""
    items = args.datasets or [f"{args.dataset}={args.data_dir}" if args.data_dir else args.dataset]
    folders = {}
    for item in items:
        name, _, folder = item.partition("=")
        name = get_animation_dataset(name).name  # a clear error for an unknown dataset
        if name in folders:
            raise ValueError(f"--datasets names {name} twice.")
        folders[name] = folder or str(default_animation_dir(name))
    if len(folders) > 1 and not recipe.per_dataset:
        takers = [r.name for r in ANIMATION_RECIPES.values() if r.per_dataset]
        raise ValueError(f"{recipe.display_name} trains on one dataset; several in one run are for {takers}.")
    args.datasets = [f"{name}={folder}" for name, folder in folders.items()]  # as logged
    return folders


def resolve_repeats(args: AnimationArguments) -> dict[str, int]:
    """`--dataset_repeats NAME=N ...` as `{name: N}` (N >= 1) for datasets of the run."""
    counts = {}
    for item in args.dataset_repeats or []:
        name, _, count = item.partition("=")
        if not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f"--dataset_repeats takes NAME=N with N >= 1, got {item!r}.")
        name = get_animation_dataset(name).name
        if name not in args.dataset_dirs:
            raise ValueError(f"--dataset_repeats names {name}, which is not among the run's datasets "
                             f"{list(args.dataset_dirs)}.")
        counts[name] = int(count)
    return counts


def loggable_args(args: AnimationArguments) -> dict:
    """The arguments as saved in results.json: never the Hub token."""
    return {k: v for k, v in dataclasses.asdict(args).items() if k != "hub_token"}


def stage_setting(args: AnimationArguments, stage: AnimationStage, key: str):
    """A training setting for `stage`: the command line's, else the stage's default, else the recipe's."""
    if key in args.explicit_settings or key not in stage.defaults:
        return getattr(args, key)
    return stage.defaults[key]


# ---------------------------------------------------------------------------------------------------------------------
# Model and data
# ---------------------------------------------------------------------------------------------------------------------


def load_audio_encoder(args: AnimationArguments):
    """The baseline encoder's checkpoint (`--audio_encoder`), or the same fused with `--wav2sem` (a model)."""
    if args.wav2sem:
        return Wav2SemFusedEncoder.from_backbone_and_wav2sem(args.audio_encoder, args.wav2sem, fusion_init=args.fusion_init)
    return args.audio_encoder


def encoder_layerdrop(name_or_path: str) -> float:
    """The LayerDrop probability of the speech model in `name_or_path` (the backbone of a fused encoder)."""
    config = AutoConfig.from_pretrained(name_or_path)
    config = getattr(config, "audio_config", None) or config
    return float(getattr(config, "layerdrop", 0.0) or 0.0)


def build_model(args: AnimationArguments, recipe: AnimationRecipe, stage: AnimationStage | None = None,
                previous: dict | None = None):
    """The stage's model (default: the recipe's model around the loaded encoder): the recipe's preset with
    `--config_overrides`, the mesh size from the data's templates, the earlier stages' models from `previous`."""
    datasets = [
        {"name": name, "vertice_dim": next(iter(load_templates(folder).values())).size,
         "train_subjects": list(get_animation_dataset(name).train_subjects)}
        for name, folder in args.dataset_dirs.items()
    ]
    context = StageContext(
        args=args,
        vertice_dim=datasets[0]["vertice_dim"],
        train_subjects=datasets[0]["train_subjects"],
        overrides=json.loads(args.config_overrides) if args.config_overrides else {},
        previous=dict(previous or {}),
        load_audio_encoder=lambda: load_audio_encoder(args),
        datasets=datasets,
    )
    if stage is not None and stage.build is not None:
        return stage.build(context)
    mixture = {}
    if recipe.per_dataset:  # every dataset's mesh and identities (the model's `datasets`)
        mixture["datasets"] = [
            {"name": d["name"], "vertice_dim": d["vertice_dim"], "subjects": d["train_subjects"]} for d in datasets
        ]
    return recipe.model_class.from_audio_encoder(
        context.load_audio_encoder(), dataset=args.preset, vertice_dim=context.vertice_dim,
        train_subjects=context.train_subjects, **mixture, **context.overrides,
    )


def build_datasets(args: AnimationArguments, model, say) -> dict:
    """train / val / test splits at the model's frame rate, audio prepared by the model's feature extractor (a model
    without audio, such as a stage-1 VQ-VAE, gets the dataset's rate and speakers and a default extractor). With
    several datasets (`--datasets`) each split is a `DatasetMixture` of them, each at its own rate and speakers."""
    splits = {"train": {}, "val": {}, "test": {}}
    for name, folder in args.dataset_dirs.items():
        info = get_animation_dataset(name)
        if hasattr(model.config, "dataset_entry"):  # a model of several datasets: this one's rate and identities
            entry = model.config.dataset_entry(name)
            subjects, frame_rate = entry["subjects"], entry["frame_rate"]
        elif hasattr(model, "build_feature_extractor"):
            subjects, frame_rate = model.config.train_subjects, model.config.frame_rate
        else:
            subjects = list(info.train_subjects)
            frame_rate = getattr(model.config, "frame_rate", None) or info.frame_rate
        extractor = (model.build_feature_extractor() if hasattr(model, "build_feature_extractor")
                     else Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True))
        kwargs = dict(train_subjects=subjects, frame_rate=frame_rate, feature_extractor=extractor,
                      max_seconds=args.max_clip_seconds)
        for split in splits:
            try:
                splits[split][name] = AnimationDataset(folder, name, split, **kwargs)
            except ValueError as error:
                if split != "val":
                    raise
                say(f"No validation{f' for {name}' if len(args.dataset_dirs) > 1 else ''}: {error}")
                continue
            dataset = splits[split][name]
            if dataset.skipped:
                say(f"{name} {split}: skipped {dataset.skipped_summary()} "
                    f"({sum(map(len, dataset.skipped.values()))} sequences)")
            if dataset.clipped:
                say(f"{name} {split}: {len(dataset.clipped)} clips cut to {args.max_clip_seconds:g} s")
    if len(args.dataset_dirs) == 1:
        return {split: parts.get(args.dataset) for split, parts in splits.items()}
    return {split: DatasetMixture(parts) if parts else None for split, parts in splits.items()}


def dataset_parts(dataset) -> dict:
    """`{name: AnimationDataset}` of a split: a mixture's parts, or the one dataset (empty for `None`)."""
    if dataset is None:
        return {}
    return dict(dataset.parts) if isinstance(dataset, DatasetMixture) else {dataset.info.name: dataset}


def data_report(args, datasets_: dict) -> dict:
    def report(name: str, folder: str) -> dict:
        return {
            "data_dir": folder,
            "dataset": name,
            "max_clip_seconds": args.max_clip_seconds,
            "repeats": args.dataset_repeat_counts.get(name, 1),
            "splits": {
                split: None if dataset is None else {
                    "sequences": len(dataset), "frame_rate": dataset.frame_rate, "skipped": dataset.skipped,
                    "clipped": dataset.clipped,
                }
                for split, dataset in ((split, dataset_parts(d).get(name)) for split, d in datasets_.items())
            },
        }

    reports = {name: report(name, folder) for name, folder in args.dataset_dirs.items()}
    first = dict(reports[args.dataset])
    if len(reports) > 1:
        first["datasets"] = reports
    return first


# ---------------------------------------------------------------------------------------------------------------------
# Rendering and saving
# ---------------------------------------------------------------------------------------------------------------------


def render_results(
    results: list[dict], data_dir: Path, out_dir: Path, regions: Regions, fps: float, frames: int, gif: bool,
    video: bool = False,
):
    """PNG grid (ground truth over prediction) of the first test prediction, a GIF of it, and an MP4 with its speech;
    returns the paths."""
    if not frames and not gif and not video:
        return []
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
    if video:
        speech = data_dir / "wav" / f"{first['name']}.wav"
        paths.append(render_video(out_dir / f"{stem}.mp4", rows, fps, faces, speech, SAMPLING_RATE, lips=regions.lip))
    return paths


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


def write_animation_card(args, recipe, output_dir: Path, model, datasets_: dict, metrics: dict, train_time: float,
                         hardware: str, metrics_by_dataset: dict | None = None):
    """The model card; `metrics` are the first dataset's, `metrics_by_dataset` every dataset's of a mixture (each in
    the model-index, the others named in the evaluation line)."""
    repo_id = args.hub_model_id or output_dir.name
    info = get_animation_dataset(args.dataset)
    metrics_by_dataset = metrics_by_dataset or {args.dataset: metrics}
    samples = {name: Path(folder).resolve() == default_animation_dir(name).resolve()
               for name, folder in args.dataset_dirs.items()}
    data_is_sample = all(samples.values())
    base_models = [m for m in (args.audio_encoder, args.wav2sem) if m and not Path(m).exists()]
    eval_results = []
    for name, scores in metrics_by_dataset.items():
        facts = get_animation_dataset(name)
        scale_of = {"lve": facts.lve_scale, "mve": facts.lve_scale, "fdd": facts.fdd_scale}
        eval_results += [
            EvalResult(
                task_type="speech-driven-facial-animation", dataset_type=facts.name, dataset_name=facts.display_name,
                dataset_split="test", metric_type=key, metric_name=f"{key.upper()} (x{scale_of[key]:g})",
                metric_value=round(scores[key], 5),
            )
            for key in ("lve", "mve", "fdd") if scores.get(key) is not None
        ]
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        tags=["wav2sem", recipe.name, "speech-driven-facial-animation", "3d", "audio"],
        datasets=[name for name, sample in samples.items() if not sample] or None,
        base_model=base_models or None,
        model_name=repo_id,
        eval_results=eval_results,
    )
    def settings(stage: AnimationStage) -> str:
        optimizer = {"adam": "Adam", "adamw": "AdamW"}[stage.optimizer]
        schedule = ""
        if args.preset in stage.lr_step:
            epochs, gamma = stage.lr_step[args.preset]
            schedule = f" (x{gamma:g} every {epochs} epochs)"
        return (
            f"{optimizer} lr {stage_setting(args, stage, 'learning_rate')}{schedule}, batch "
            f"{args.per_device_train_batch_size} x "
            f"{args.gradient_accumulation_steps} accumulation, {stage_setting(args, stage, 'num_train_epochs')} epochs"
            + (f" (capped at {args.max_train_steps} steps)" if args.max_train_steps else "")
        )

    stages = recipe.training_stages
    if len(stages) == 1:
        optimisation = settings(stages[0])
    else:  # every stage, and where an earlier stage's model came from when it was not trained in this run
        ran = {s.name for s in recipe.stages_to_run(args.stage)}
        optimisation = "; ".join(
            f"stage {i + 1} `{s.name}` ({s.description}): "
            + (settings(s) if s.name in ran else f"trained separately (`--{s.name} {getattr(args, s.name, None)}`)")
            for i, s in enumerate(stages)
        )
    optimisation += f", {args.mixed_precision} precision, seed {args.seed}"
    if recipe.name == "faceformer":
        decoding = "teacher forcing" if args.teacher_forcing else "autoregressive decoding during training"
        optimisation += f"; {decoding}"
    write_model_card(
        output_dir,
        "animation",
        card_data,
        model_name=repo_id,
        repo_id=repo_id,
        model_display_name=recipe.display_name,
        model_paragraph=recipe.card_paragraph,
        paper=recipe.paper,
        train_command=f"--model {recipe.name} --dataset {args.dataset} --preset {args.preset}"
        + (f" --stage {args.stage}" if len(stages) > 1 else "") + (f" --vqvae {args.vqvae}" if args.vqvae else ""),
        dataset_name=" + ".join(get_animation_dataset(name).display_name for name in args.dataset_dirs)
        + ((" (synthetic samples in their layouts)" if len(samples) > 1 else " (synthetic sample in its layout)")
           if data_is_sample else ""),
        audio_encoder=args.audio_encoder,
        wav2sem=args.wav2sem,
        first_subject=model.config.train_subjects[0],
        subjects=", ".join(model.config.train_subjects),
        vertice_dim=model.config.vertice_dim,
        frame_rate=f"{model.config.frame_rate:g}",
        data_description="; ".join(
            f"{get_animation_dataset(name).display_name} processed layout from `{folder}`"
            + (f" ({args.dataset_repeat_counts[name]} x an epoch)" if name in args.dataset_repeat_counts else "")
            for name, folder in args.dataset_dirs.items()
        ) + (f"; clips cut to {args.max_clip_seconds:g} s" if args.max_clip_seconds else "") + (
            ": the synthetic lip dataset embedded in the wav2sem package (procedural mesh driven by espeak-ng "
            "phoneme timings), not real captures" if data_is_sample else ""
        ),
        num_train=len(datasets_["train"]),
        num_val=len(datasets_["val"]) if datasets_.get("val") is not None else 0,
        num_test=metrics["num_sequences"],
        objective=recipe.objective,
        optimisation=optimisation,
        hardware=hardware,
        train_time=f"{train_time / 60:.1f} minutes",
        eval_description=f"test split, {metrics['num_sequences']} sequences, {metrics['num_predictions']} predictions"
        + (f", {info.display_name}; each dataset scored apart, the others: " + "; ".join(
            f"{get_animation_dataset(name).display_name} LVE {m['lve']:.4f}, MVE {m['mve']:.4f}"
            + (f", FDD {m['fdd']:.4f}" if m.get("fdd") is not None else "")
            + f" ({m['num_sequences']} sequences)"
            for name, m in metrics_by_dataset.items() if name != args.dataset
        ) if len(metrics_by_dataset) > 1 else ""),
        lve_scale=f"{info.lve_scale:g}",
        fdd_scale=f"{info.fdd_scale:g}",
        metrics=metrics,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def epoch_losses_from_log(log: JsonLinesLogger, epoch: int) -> list[float]:
    """The per-step losses already logged in `epoch` (a run resumed mid-epoch reports the whole epoch's mean)."""
    if not log.enabled or not log.path.is_file():
        return []
    records = [json.loads(line) for line in log.path.read_text().splitlines() if line.strip()]
    return [r["loss"] for r in records if r.get("epoch") == epoch and "loss" in r]


def stage_validation_loss(model, stage: AnimationStage, dataset, device, autocast, mode: str) -> float:
    """The validation loss of an audio-driven stage (every training style for unseen speakers, as the test), or of a
    motion-only stage (each sequence once: the style does not enter). Over a mixture: each dataset's loss (its name
    as `dataset=`), weighted by its sequences."""
    if isinstance(dataset, DatasetMixture):
        return float(sum(
            len(part) * validation_loss(model, part, device, autocast, mode, {**stage.eval_kwargs, "dataset": name})
            for name, part in dataset.parts.items()
        ) / len(dataset))
    if stage.inputs is None:
        return validation_loss(model, dataset, device, autocast, mode, stage.eval_kwargs)
    was_training = model.training
    model.eval()
    losses = []
    with torch.no_grad():
        for index in range(len(dataset)):
            batch = collate_animation([dataset[index]])
            inputs = {k: v.to(device) for k, v in stage.inputs(batch).items() if v is not None}
            with autocast():
                losses.append(float(model(**inputs, **stage.eval_kwargs).loss))
    model.train(was_training)
    return float(np.mean(losses))


def main(argv=None) -> dict:
    args = parse_args(argv)
    recipe = get_recipe(args.model)
    if args.push_to_hub:  # a missing token fails now, before any data or training work
        try:
            resolve_token(args.hub_model_id, args.hub_token)
        except HubUploadError as error:
            raise SystemExit(f"error: {error}") from None
    if args.keep_freed_memory:
        keep_freed_memory()
    widen_onednn_primitive_cache()  # before the first oneDNN op
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        cpu=args.cpu,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        # LayerDrop (0.1 in wav2vec2-base-960h) skips whole encoder layers, so under DDP some get no gradient in a step.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=encoder_layerdrop(args.audio_encoder) > 0)],
    )

    previous = {"vqvae": args.vqvae} if args.vqvae else {}
    summary = {}
    for stage in recipe.stages_to_run(args.stage):
        # The scored stage writes OUTPUT/ itself; an intermediate one OUTPUT/<stage>/, which the next stages read.
        stage_dir = output_dir if stage.scored else output_dir / stage.name
        summary = train_stage(args, recipe, stage, stage_dir, previous, accelerator)
        previous[stage.name] = stage_dir
        accelerator.free_memory()  # the next stage registers its own model, optimiser and loader for save_state
    end_training(accelerator)

    if args.push_to_hub and accelerator.is_main_process:
        try:
            url = push_folder_to_hub(output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)
        except HubUploadError as error:
            raise SystemExit(f"error: {error}") from None
        tqdm.write(f"Pushed to {url}")
        summary["pushed_to"] = url
    return summary


def train_stage(args, recipe: AnimationRecipe, stage: AnimationStage, output_dir: Path, previous: dict,
                accelerator: Accelerator) -> dict:
    """Train one stage (build, train with checkpoints and resume, validate every epoch); the scored stage is then
    scored on the test split, rendered and carded; every stage's model is saved to `output_dir`."""
    main_process = accelerator.is_main_process
    done_marker = output_dir / "results.json"
    if not stage.scored and args.resume_from_checkpoint and done_marker.is_file():
        tqdm.write(f"Stage {stage.name}: complete in {output_dir}, reused.") if main_process else None
        return json.loads(done_marker.read_text())
    set_seed(args.seed)  # every stage starts from the seed, so a resumed run's later stages are the uninterrupted run's
    num_train_epochs = stage_setting(args, stage, "num_train_epochs")
    learning_rate = stage_setting(args, stage, "learning_rate")

    def say(message: str):
        if main_process:
            tqdm.write(message)

    # ---- model and data ----
    model = build_model(args, recipe, stage, previous)
    datasets_ = build_datasets(args, model, say)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    sources = " + ".join(
        f"{part.data_dir} at {part.frame_rate:g} fps" for part in dataset_parts(datasets_["train"]).values()
    )
    say(
        f"Data: {len(datasets_['train'])} train / {len(datasets_['val'] or [])} val / {len(datasets_['test'])} test "
        f"sequences from {sources}; model {recipe.display_name}"
        + (f" stage {stage.name}" if len(recipe.training_stages) > 1 else "")
        + f" (preset {args.preset})"
        + (f" with {type(model.audio_encoder).__name__}" if hasattr(model, "audio_encoder") else "")
        + f" ({sum(p.numel() for p in model.parameters()):,} parameters, {trainable:,} trainable)"
    )
    prepare = recipe.prepare if len(recipe.training_stages) == 1 else None
    if prepare is not None and not args.resume_from_checkpoint:
        prepare(model, datasets_["train"])

    if isinstance(datasets_["train"], DatasetMixture):  # batches never mix two datasets (mesh types)
        sampler = DatasetGroupedBatchSampler(
            datasets_["train"].group_lengths(), args.per_device_train_batch_size, args.dataset_repeat_counts,
            seed=args.seed,
        )
    else:
        sampler = LengthGroupedBatchSampler(
            datasets_["train"].lengths(), args.per_device_train_batch_size, seed=args.seed
        )
    # A generator of its own: creating a DataLoader iterator draws a seed from it instead of the global RNG, so a
    # resumed run's dropout masks are the uninterrupted run's.
    train_loader = torch.utils.data.DataLoader(
        datasets_["train"], batch_sampler=sampler, collate_fn=collate_animation,
        generator=torch.Generator().manual_seed(args.seed),
    )
    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[stage.optimizer]
    optimizer = optimizer_class([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    if accelerator.device.type == "cpu" and args.cpu_threads != 0:  # sized to the free cores, re-checked per step
        CpuThreads(args.cpu_threads, accelerator.num_processes).follow(optimizer)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    total_steps = args.max_train_steps or num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    unwrapped = accelerator.unwrap_model(model)
    log = JsonLinesLogger(output_dir / "metrics.jsonl", main_process)
    train_kwargs = stage.train_kwargs(args)

    # ---- resume ----
    completed_steps, start_epoch, skip_batches = 0, 0, 0
    checkpoint_dir = output_dir / "checkpoints"
    if args.resume_from_checkpoint:
        checkpoint = resolve_checkpoint(checkpoint_dir, args.resume_from_checkpoint)
        if checkpoint is None:
            say(f"No checkpoint in {checkpoint_dir} yet: starting from scratch.")
            if prepare is not None:
                prepare(unwrapped, datasets_["train"])
        else:
            accelerator.load_state(str(checkpoint))
            completed_steps = checkpoint_step(checkpoint)
            start_epoch = completed_steps // steps_per_epoch
            skip_batches = (completed_steps % steps_per_epoch) * args.gradient_accumulation_steps
            say(f"Resumed from {checkpoint} at step {completed_steps} (epoch {start_epoch}, batch {skip_batches}).")
        log.drop_after(completed_steps)  # the killed run's later steps are logged again

    started = time.time()
    desc = "train" if len(recipe.training_stages) == 1 else f"train {stage.name}"
    progress = tqdm(total=total_steps, initial=completed_steps, desc=desc, disable=not main_process)
    for epoch in range(start_epoch, num_epochs):
        if completed_steps >= total_steps:
            break
        model.train()
        loader = accelerator.skip_first_batches(train_loader, skip_batches) if epoch == start_epoch else train_loader
        loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        running = epoch_losses_from_log(log, epoch) if epoch == start_epoch else []
        for batch in loader:
            with accelerator.accumulate(model):
                inputs = {k: v for k, v in batch.items() if k not in ("names", "subjects", "datasets")}
                if recipe.per_dataset:  # one dataset per batch (DatasetGroupedBatchSampler)
                    inputs["dataset"] = batch["datasets"][0]
                if stage.inputs is not None:
                    inputs = {k: v for k, v in stage.inputs(inputs).items() if v is not None}
                with accelerator.autocast():
                    output = model(**inputs, **train_kwargs)
                accelerator.backward(output.loss)
                if stage.lr_step:  # a step schedule, from the completed steps (so a resumed run has it too)
                    for group in optimizer.param_groups:
                        group["lr"] = stage_learning_rate(
                            learning_rate, stage, args.preset, completed_steps, steps_per_epoch
                        )
                optimizer.step()
                optimizer.zero_grad()
            loss = accelerator.reduce(output.loss.detach(), "mean").item()
            running.append(loss)
            if not accelerator.sync_gradients:
                continue
            completed_steps += 1
            progress.update(1)
            log.log({"step": completed_steps, "epoch": epoch, "loss": loss})
            if completed_steps % args.logging_steps == 0:
                progress.set_postfix(loss=f"{np.mean(running[-args.logging_steps:]):.3e}")
            if args.checkpointing_steps and completed_steps % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, checkpoint_dir, completed_steps, args.checkpoints_total_limit)
            if completed_steps >= total_steps:
                break
        record = {"step": completed_steps, "epoch": epoch + 1, "train_loss_epoch": float(np.mean(running))}
        if datasets_["val"] is not None and main_process:
            record["val_loss"] = stage_validation_loss(
                unwrapped, stage, datasets_["val"], accelerator.device, accelerator.autocast, args.eval_conditions
            )
        log.log(record)
        say(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4e}" for k, v in record.items() if "loss" in k))
        if not args.checkpointing_steps:
            save_checkpoint(accelerator, checkpoint_dir, completed_steps, args.checkpoints_total_limit)
    progress.close()
    train_time = time.time() - started

    # ---- test, render, save ----
    accelerator.wait_for_everyone()
    summary = {}
    if main_process and not stage.scored:  # an intermediate stage: its model for the next stage, no test
        output_dir.mkdir(parents=True, exist_ok=True)
        unwrapped.save_pretrained(output_dir)
        summary = {
            "model": recipe.name, "stage": stage.name, "train_time_s": round(train_time, 1), "steps": completed_steps,
            "seed": args.seed, "args": loggable_args(args),
        }
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the stage is complete: its saved model replaces them
        done_marker.write_text(json.dumps(summary, indent=1) + "\n")  # written last: marks the stage complete
        say(f"Stage {stage.name} saved to {output_dir}")
    elif main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        metrics_by_dataset, sequence_metrics, renders = {}, {}, []
        several = len(args.dataset_dirs) > 1
        for name, test_set in dataset_parts(datasets_["test"]).items():  # each dataset scored apart
            info, part_dir = get_animation_dataset(name), Path(args.dataset_dirs[name])
            regions = Regions.from_folder(part_dir)
            results = predict_test_split(
                unwrapped, test_set, accelerator.device, accelerator.autocast, args.eval_conditions,
                args.max_test_sequences,
                {**recipe.predict_kwargs, **({"dataset": name} if recipe.per_dataset else {}),
                 **sampling_kwargs(unwrapped, args.seed, args.num_inference_steps)},
            )
            metrics = metrics_by_dataset[name] = score_predictions(results, regions, info.lve_scale, info.fdd_scale)
            say(
                (f"{info.display_name} " if several else "")
                + f"test ({metrics['num_sequences']} sequences, {metrics['num_predictions']} predictions): "
                f"LVE {metrics['lve']:.4f} (x{info.lve_scale:g}) MVE {metrics['mve']:.4f} (x{info.lve_scale:g}) "
                + (f"FDD {metrics['fdd']:.4f} (x{info.fdd_scale:g})" if metrics["fdd"] is not None else "FDD n/a")
                + (f" diversity {metrics['diversity']:.4f} (x{info.lve_scale:g})"
                   if metrics["diversity"] is not None else "")
            )
            if recipe.per_dataset:  # UniTalker's own per-sequence averages, in its scaled space
                scale = unwrapped.config.dataset_entry(name)["scale"]
                sequence_metrics[name] = {**sequence_lip_errors(results, regions.lip, scale), "vertex_scale": scale}
            renders += render_results(
                results, part_dir, output_dir / "renders" / (name if several else ""), regions, test_set.frame_rate,
                args.render_frames, args.render_gif, args.render_video,
            )
        metrics = metrics_by_dataset[args.dataset]
        unwrapped.save_pretrained(output_dir)  # with the encoder's feature extractor
        for name, folder in args.dataset_dirs.items():  # a mixture's other datasets' files under OUTPUT/<name>/
            target = output_dir if name == args.dataset else output_dir / name
            target.mkdir(parents=True, exist_ok=True)
            subjects = dataset_parts(datasets_["train"])[name].train_subjects
            copy_data_files(Path(folder), target, subjects)
        (output_dir / "data_report.json").write_text(json.dumps(data_report(args, datasets_), indent=1) + "\n")
        device = "CPU" if accelerator.device.type == "cpu" else accelerator.device.type.upper()
        write_animation_card(
            args, recipe, output_dir, unwrapped, datasets_, metrics, train_time,
            f"{accelerator.num_processes} x {device}", metrics_by_dataset,
        )
        summary = {
            "model": recipe.name,
            "metrics": metrics,
            "metrics_by_dataset": metrics_by_dataset,
            **({"sequence_metrics_by_dataset": sequence_metrics} if sequence_metrics else {}),
            "train_time_s": round(train_time, 1),
            "steps": completed_steps,
            "renders": [str(p) for p in renders],
            "audio_encoder": args.audio_encoder,
            "wav2sem": args.wav2sem,
            "seed": args.seed,
            "args": loggable_args(args),
        }
        if len(recipe.training_stages) > 1:
            summary["stages"] = {
                name: (json.loads((Path(folder) / "results.json").read_text()) if (Path(folder) / "results.json").is_file()
                       else {"model": str(folder)})
                for name, folder in previous.items()
            }
            for name, value in summary["stages"].items():
                value.pop("args", None)
            summary["train_time_s_all_stages"] = round(
                train_time + sum(v.get("train_time_s", 0) for v in summary["stages"].values()), 1
            )
        (output_dir / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
        say(f"Saved to {output_dir}" + (f" (renders: {', '.join(p.name for p in renders)})" if renders else ""))
    del model, optimizer  # the DDP wrapper must go before its process group (see end_training, which waits for all)
    return summary


def console_script() -> int:
    """`wav2sem-train-animation` (setup.cfg): `main` with an exit status, as `main` returns the run's summary."""
    main()
    return 0


if __name__ == "__main__":
    main()
