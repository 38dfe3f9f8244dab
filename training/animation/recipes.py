"""One thin recipe per animation model: only what differs between them. Everything else (data, the training loop,
checkpoints and resume, the test protocol and scoring, renders, the model card, the push) is the runner's, identical
for every model, so that the baseline-vs-Wav2Sem rows of all six are comparable.

A recipe names the model's config and model classes, its published training defaults, its training stages, the
keyword arguments its `forward` takes in training and validation and its `predict` at test time, an optional hook
that prepares a new model from the training data (VOCA's PCA basis), and the paragraph the model card says about it.
Adding a model is one model file pair, one entry in `ANIMATION_RECIPES` and one test file.

Most models train in one stage (the recipe's own `train_kwargs` / `eval_kwargs`). A model trained in several
(CodeTalker: a VQ-VAE over the motion, then the audio-driven predictor into its codebook) lists `AnimationStage`s:
each says how its model is built from the arguments and the earlier stages' saved models, the keyword arguments of
its `forward`, its optimiser and defaults, and whether it is the scored one (the last). The runner trains them in
order, saves each intermediate model under `OUTPUT/<stage>/`, and scores, renders and cards only the last.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from modeling_wav2sem import (
    CodeTalkerConfig,
    CodeTalkerForAnimation,
    CodeTalkerVQVAE,
    CodeTalkerVQVAEConfig,
    FaceDiffuserConfig,
    FaceDiffuserForAnimation,
    FaceFormerConfig,
    FaceFormerForAnimation,
    LGLDMConfig,
    LGLDMForAnimation,
    UniTalkerConfig,
    UniTalkerForAnimation,
    VOCAConfig,
    VOCAForAnimation,
)

from .data import DatasetMixture


@dataclass
class StageContext:
    """What a stage's `build` gets: the parsed arguments, the mesh size and speakers of the data, the
    `--config_overrides` dict, the folders of the earlier stages' saved models (`{stage name: folder}`, also from the
    command line, e.g. `--vqvae`), and the runner's audio-encoder loader (`--audio_encoder`, fused with `--wav2sem`).
    `vertice_dim` and `train_subjects` are the first dataset's; `datasets` lists every dataset of the run (`name`,
    `vertice_dim`, `train_subjects`), more than one only for a recipe with `per_dataset`."""

    args: object
    vertice_dim: int
    train_subjects: list[str]
    overrides: dict
    previous: dict
    load_audio_encoder: Callable[[], object]
    datasets: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class AnimationStage:
    """One training stage of a recipe.

    Args:
        name: the `--stage` name; an intermediate stage's model is saved to `OUTPUT/<name>/`.
        build: `StageContext -> model`; `None` builds the recipe's model around the audio encoder (one-stage models).
        inputs: `batch -> forward keyword arguments` (a collated batch: `input_values`, `attention_mask`, `template`,
            `subject_index`, `labels`, `vertex_mask`); `None` passes the batch as is (audio-driven models).
        train_kwargs / eval_kwargs: extra `forward` keyword arguments in training and for the validation loss.
        optimizer: `"adam"` or `"adamw"` (torch's defaults otherwise), with the stage's learning rate.
        defaults: training settings of this stage where the command line leaves them out (`num_train_epochs`,
            `learning_rate`), over the recipe's `defaults`.
        lr_step: `{preset: (epochs, gamma)}`: the learning rate times gamma every `epochs` epochs (torch's StepLR, as
            CodeTalker's VOCASET stage 1: 20, 0.5), computed from the completed steps, so a resumed run has it too.
        scored: the stage whose model is scored on the test split, rendered, carded and saved to `OUTPUT/` (the last).
        needs: the earlier stages whose saved model `build` reads (from this run, or given on the command line).
        description: what the card says this stage trains, and with which objective.
    """

    name: str
    build: Callable[[StageContext], object] | None = None
    inputs: Callable[[dict], dict] | None = None
    train_kwargs: Callable[[object], dict] = lambda args: {}
    eval_kwargs: dict = field(default_factory=dict)
    optimizer: str = "adam"
    defaults: dict = field(default_factory=dict)
    lr_step: dict = field(default_factory=dict)
    scored: bool = False
    needs: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class AnimationRecipe:
    """What the runner needs to know about one animation model.

    Args:
        name: the `--model` name.
        display_name: the model's name in logs and the card.
        config_class / model_class: the transformers classes (`from_preset`, `from_audio_encoder`).
        defaults: the published training settings, used where the command line leaves them out
            (`num_train_epochs`, `learning_rate`, `per_device_train_batch_size`).
        stages: training stages in order (`AnimationStage`s: CodeTalker and LG-LDM train a VQ-VAE first); empty for a
            one-stage model, which trains with the recipe's own `train_kwargs` and `eval_kwargs`.
        train_kwargs: `forward` keyword arguments in training, from the parsed arguments.
        eval_kwargs: `forward` keyword arguments for the validation loss.
        predict_kwargs: `predict` keyword arguments at test time.
        prepare: called once on a new model with the training split before training (not on resume: the
            checkpoint holds the result).
        paper / card_paragraph / objective: what the model card says.
        per_dataset: the model trains on several datasets in one run (`--datasets`): it is built with `datasets=`
            (every dataset's mesh and speakers), each batch holds one dataset and `forward` / `predict` take its name
            as `dataset=`; each dataset is scored apart. Other models take one dataset.
    """

    name: str
    display_name: str
    config_class: type
    model_class: type
    defaults: dict
    paper: str
    card_paragraph: str
    objective: str
    stages: tuple[AnimationStage, ...] = ()
    train_kwargs: Callable[[object], dict] = lambda args: {}
    eval_kwargs: dict = field(default_factory=dict)
    predict_kwargs: dict = field(default_factory=dict)
    prepare: Callable | None = None
    per_dataset: bool = False

    @property
    def training_stages(self) -> tuple[AnimationStage, ...]:
        """The stages in order; a one-stage model's single `"train"` stage uses the recipe's kwargs."""
        if self.stages:
            return self.stages
        return (AnimationStage("train", train_kwargs=self.train_kwargs, eval_kwargs=self.eval_kwargs, scored=True),)

    def stages_to_run(self, stage: str) -> tuple[AnimationStage, ...]:
        """`--stage`: `"all"` (every stage, in order) or one stage's name."""
        stages = self.training_stages
        if stage == "all":
            return stages
        chosen = tuple(s for s in stages if s.name == stage)
        if not chosen:
            raise ValueError(
                f"--stage must be 'all' or one of {[s.name for s in stages]} for {self.display_name}, got {stage!r}."
            )
        return chosen

    def preset_for(self, dataset: str, preset: str | None) -> str:
        """The config preset: `preset` when given, else the dataset's."""
        name = (preset or dataset).lower()
        if name not in self.config_class.presets:
            raise ValueError(
                f"{self.display_name} has no preset {name!r}; choose from {sorted(self.config_class.presets)}."
            )
        return name


def stage_learning_rate(base: float, stage: AnimationStage, preset: str, step: int, steps_per_epoch: int) -> float:
    """The learning rate of optimiser step `step` (0-based) of `stage`: `base`, times `gamma` every `epochs` epochs
    where the stage has a step schedule for `preset`."""
    if preset not in stage.lr_step:
        return base
    epochs, gamma = stage.lr_step[preset]
    return base * gamma ** (step // (epochs * steps_per_epoch))


def training_offsets(dataset, max_frames: int = 20000, seed: int = 0) -> torch.Tensor:
    """`(N, V*3)` vertex offsets (vertices minus template) of up to `max_frames` training frames, spread over the
    sequences (for VOCA's PCA initialisation of its expression layer)."""
    offsets = [item["labels"] - item["template"][None] for item in (dataset[i] for i in range(len(dataset)))]
    offsets = np.concatenate(offsets)
    if len(offsets) > max_frames:
        offsets = offsets[np.random.default_rng(seed).choice(len(offsets), max_frames, replace=False)]
    return torch.from_numpy(offsets)


def _unitalker_prepare(model, train_set):
    """Each vertex dataset's PCA basis from its training offsets (published: `pca.npz` from the training split)."""
    parts = train_set.parts if isinstance(train_set, DatasetMixture) else {train_set.info.name: train_set}
    for name, part in parts.items():
        if model.config.dataset_entry(name)["pca"]:
            model.fit_pca(training_offsets(part, max_frames=4096), name)


def _voca_prepare(model, train_set):
    model.init_expression_basis(training_offsets(train_set))


def _codetalker_vqvae(context: StageContext):
    """Stage 1: a new VQ-VAE of the preset for the data's mesh (`--config_overrides {"vqvae_config": {...}}`)."""
    preset = CodeTalkerConfig.presets[context.args.preset].get("data", context.args.preset)
    overrides = context.overrides.get("vqvae_config", {})
    return CodeTalkerVQVAE(CodeTalkerVQVAEConfig.from_preset(preset, vertice_dim=context.vertice_dim, **overrides))


def _over_trained_vqvae(model_class, context: StageContext):
    """Stage 2 of a model over CodeTalker's VQ-VAE (CodeTalker's predictor, LG-LDM's denoiser): the model around the
    audio encoder, holding the trained stage 1 (frozen)."""
    overrides = {k: v for k, v in context.overrides.items() if k != "vqvae_config"}
    return model_class.from_audio_encoder(
        context.load_audio_encoder(), dataset=context.args.preset, vertice_dim=context.vertice_dim,
        train_subjects=context.train_subjects, vqvae=str(context.previous["vqvae"]), **overrides,
    )


def _motion_only(batch: dict) -> dict:
    """The VQ-VAE's inputs: the vertices, their templates and frame mask (no audio, no speaker)."""
    return {"vertices": batch["labels"], "template": batch["template"], "vertex_mask": batch.get("vertex_mask")}


ANIMATION_RECIPES: dict[str, AnimationRecipe] = {
    "faceformer": AnimationRecipe(
        name="faceformer",
        display_name="FaceFormer",
        config_class=FaceFormerConfig,
        model_class=FaceFormerForAnimation,
        defaults={"num_train_epochs": 100, "learning_rate": 1e-4, "per_device_train_batch_size": 1},
        paper="FaceFormer: Speech-Driven 3D Facial Animation with Transformers (CVPR 2022), arXiv 2112.05329",
        card_paragraph=(
            "FaceFormer (Fan et al., CVPR 2022): the audio encoder's conv features are resampled to the vertex frame "
            "rate before its Transformer layers, `audio_feature_map` maps them to the decoder width (FC2 of Wav2Sem "
            "for a fused encoder), and an autoregressive Transformer decoder with a periodic ALiBi bias and an "
            "alignment mask predicts each frame's offsets from the template."
        ),
        objective="MSE between predicted and ground-truth vertices",
        train_kwargs=lambda args: {"teacher_forcing": args.teacher_forcing, "use_cache": True},
        eval_kwargs={"teacher_forcing": True},
    ),
    "voca": AnimationRecipe(
        name="voca",
        display_name="VOCA",
        config_class=VOCAConfig,
        model_class=VOCAForAnimation,
        defaults={"num_train_epochs": 100, "learning_rate": 1e-4, "per_device_train_batch_size": 1},
        paper="Capture, Learning, and Synthesis of 3D Speaking Styles (CVPR 2019)",
        card_paragraph=(
            "VOCA (Cudeiro et al., CVPR 2019), written fresh: the audio encoder's 50 Hz output is interpolated in "
            "time to the vertex frame rate, projected to the 29-wide window DeepSpeech's logits had, and cut into "
            "one 16-frame window per vertex frame; the one-hot speaking style joins it as channels, four strided "
            "convolutions and two fully connected layers give a 50-d expression code, and a linear expression layer "
            "(initialised from a PCA basis of the training offsets) decodes it to vertex offsets from the template. "
            "Every frame is predicted from its own window."
        ),
        objective="reconstruction + 10 x velocity (squared L2 per vertex, consecutive frames), as VOCA",
        prepare=_voca_prepare,
    ),
    "codetalker": AnimationRecipe(
        name="codetalker",
        display_name="CodeTalker",
        config_class=CodeTalkerConfig,
        model_class=CodeTalkerForAnimation,
        defaults={"num_train_epochs": 100, "learning_rate": 1e-4, "per_device_train_batch_size": 1},
        paper="CodeTalker: Speech-Driven 3D Facial Animation with Discrete Motion Prior (CVPR 2023), arXiv 2301.02379",
        card_paragraph=(
            "CodeTalker (Xing et al., CVPR 2023), in two stages. Stage 1, a Transformer VQ-VAE, learns a codebook of "
            "facial motion from the training vertices alone (VOCASET: 16 tokens of 64 per frame, BIWI: 8 of 128, 256 "
            "codes). Stage 2 is FaceFormer's autoregressive decoder over the audio encoder's frames (conv features "
            "resampled to the vertex rate; `audio_feature_map` plays FC2 of Wav2Sem for a fused encoder), predicting "
            "each frame's stage-1 latent, which the frozen stage-1 model quantises and decodes to vertex offsets."
        ),
        objective="stage 1: L1 reconstruction + codebook loss (beta 0.25); stage 2: MSE of the vertices + MSE of "
        "the predicted latents to the quantised stage-1 latents of the ground truth",
        stages=(
            AnimationStage(
                name="vqvae",
                build=_codetalker_vqvae,
                inputs=_motion_only,
                optimizer="adamw",
                defaults={"num_train_epochs": 200},
                lr_step={"vocaset": (20, 0.5)},  # config/vocaset/stage1.yaml StepLR; BIWI's is off
                description="VQ-VAE over the vertex offsets (motion only): L1 reconstruction + codebook loss, AdamW",
            ),
            AnimationStage(
                name="predictor",
                build=partial(_over_trained_vqvae, CodeTalkerForAnimation),
                needs=("vqvae",),
                scored=True,
                description="autoregressive predictor into the frozen VQ-VAE's codebook, teacher-forced: MSE of the "
                "vertices + MSE of the latents, Adam",
            ),
        ),
    ),
    "lgldm": AnimationRecipe(
        name="lgldm",
        display_name="LG-LDM",
        config_class=LGLDMConfig,
        model_class=LGLDMForAnimation,
        defaults={"num_train_epochs": 100, "learning_rate": 1e-4, "per_device_train_batch_size": 1},
        paper="Expressive 3D Facial Animation Generation Based on Local-to-global Latent Diffusion (IEEE TVCG 2024)",
        card_paragraph=(
            "LG-LDM (Song et al., IEEE TVCG 2024), in two stages. Stage 1 is CodeTalker's Transformer VQ-VAE over the "
            "training vertices (motion only). Stage 2 is a latent diffusion model over its frozen latents: a "
            "Transformer decoder (causal periodic ALiBi mask) predicts the clean latent x0 of the whole sequence from "
            "the noisy one, the step and the speaking style, attending frame by frame to `audio_extract` of the audio "
            "encoder's frames at the vertex rate (the Wav2Sem F_d enters there for a fused encoder); the frozen stage "
            "1 quantises and decodes the sample. Cosine schedule, 1000 steps, x0 prediction; test-time sampling with "
            "DDIM (eta 0, 100 steps VOCASET / 50 BIWI, as published), seeded, the audio encoded once per clip. Where "
            "the published VOCASET/BIWI code does not hold together (audio-to-latent alignment, BIWI's encoder "
            "variant), this model follows the repository's one internally consistent (MEAD) variant, with the "
            "VOCASET/BIWI widths: see `modeling_lgldm.py`."
        ),
        objective="stage 1: L1 reconstruction + codebook loss (beta 0.25); stage 2: MSE of the predicted x0 latent + "
        "MSE of the decoded vertices",
        stages=(
            AnimationStage(
                name="vqvae",
                build=_codetalker_vqvae,
                inputs=_motion_only,
                optimizer="adamw",  # the published AdamW has amsgrad=True; torch's default (False) here
                defaults={"num_train_epochs": 300},
                description="CodeTalker's VQ-VAE over the vertex offsets (motion only): L1 reconstruction + codebook "
                "loss, AdamW",
            ),
            AnimationStage(
                name="diffusion",
                build=partial(_over_trained_vqvae, LGLDMForAnimation),
                needs=("vqvae",),
                optimizer="adamw",
                eval_kwargs={"generator": 0},  # the validation loss at one fixed draw of steps and noise
                scored=True,
                description="latent diffusion over the frozen VQ-VAE's latents (x0 prediction, cosine schedule, 1000 "
                "steps; 100 epochs VOCASET, 50 BIWI published): MSE of x0 + MSE of the decoded vertices, AdamW",
            ),
        ),
    ),
    "facediffuser": AnimationRecipe(
        name="facediffuser",
        display_name="FaceDiffuser",
        config_class=FaceDiffuserConfig,
        model_class=FaceDiffuserForAnimation,
        defaults={"num_train_epochs": 50, "learning_rate": 1e-4, "per_device_train_batch_size": 1},
        paper="FaceDiffuser: Speech-Driven Facial Animation Synthesis Using Diffusion (MIG 2023), "
        "doi 10.1145/3623264.3624447",
        card_paragraph=(
            "FaceDiffuser (Stan et al., MIG 2023), written fresh (the published code is non-commercial): a diffusion "
            "model over whole vertex sequences. The audio encoder's 50 Hz output is brought to two frames per vertex "
            "frame and each pair projected by `cond_projection` (the Wav2Sem F_d enters there for a fused encoder); "
            "with the noised vertices (a per-frame projection) and the diffusion step (one-hot + Mish) it feeds a "
            "2-layer GRU whose output is multiplied by the speaking style and decoded by a zero-initialised layer to "
            "the clean vertices x0. Cosine schedule (1000 steps VOCASET, 500 BIWI), x0 prediction; test-time "
            "sampling by ancestral DDPM over every step (diffusers' scheduler), seeded, the audio encoded once per "
            "clip."
        ),
        objective="Huber loss (delta 1) between the predicted and the true clean vertices at a uniformly drawn "
        "diffusion step, as FaceDiffuser",
        eval_kwargs={"generator": 0},  # the validation loss at one fixed draw of steps and noise
    ),
    "unitalker": AnimationRecipe(
        name="unitalker",
        display_name="UniTalker",
        config_class=UniTalkerConfig,
        model_class=UniTalkerForAnimation,
        defaults={"num_train_epochs": 100, "learning_rate": 1e-4, "per_device_train_batch_size": 1},
        paper="UniTalker: Scaling up Audio-Driven 3D Facial Animation through A Unified Model (ECCV 2024), "
        "arXiv 2408.00762",
        card_paragraph=(
            "UniTalker (Fan et al., ECCV 2024): one model for a mixture of datasets with different meshes. The audio "
            "encoder's output is interpolated to the vertex frames, `audio_feature_map` maps it to 256 (FC2 of "
            "Wav2Sem for a fused encoder), a learned identity embedding (one per training speaker of every dataset, "
            "plus a pivot identity trained with probability 0.1 and used for unseen speakers) joins it, and a TCN of "
            "three residual Conv1d + LayerNorm blocks feeds one zero-initialised head per annotation type, which "
            "predicts coefficients of a fixed PCA basis of that dataset's training offsets (in UniTalker's scaled "
            "space: BIWI x 0.2). Batches never mix two datasets."
        ),
        objective="MSE of the scaled vertices + 0.01 x MSE of the PCA coefficients to the projection of the ground "
        "truth, Adam",
        prepare=_unitalker_prepare,
        per_dataset=True,
    ),
}


def get_recipe(name: str) -> AnimationRecipe:
    try:
        return ANIMATION_RECIPES[name.lower()]
    except KeyError:
        raise ValueError(f"--model must be one of {sorted(ANIMATION_RECIPES)}, got {name!r}.") from None
