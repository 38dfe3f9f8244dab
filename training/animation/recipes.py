"""One thin recipe per animation model: only what differs between them. Everything else (data, the training loop,
checkpoints and resume, the test protocol and scoring, renders, the model card, the push) is the runner's, identical
for every model, so that the baseline-vs-Wav2Sem rows of all six are comparable.

A recipe names the model's config and model classes, its published training defaults, its training stages, the
keyword arguments its `forward` takes in training and validation and its `predict` at test time, an optional hook
that prepares a new model from the training data (VOCA's PCA basis), and the paragraph the model card says about it.
Adding a model is one model file pair, one entry in `ANIMATION_RECIPES` and one test file.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from modeling_wav2sem import FaceFormerConfig, FaceFormerForAnimation, VOCAConfig, VOCAForAnimation


@dataclass(frozen=True)
class AnimationRecipe:
    """What the runner needs to know about one animation model.

    Args:
        name: the `--model` name.
        display_name: the model's name in logs and the card.
        config_class / model_class: the transformers classes (`from_preset`, `from_audio_encoder`).
        defaults: the published training settings, used where the command line leaves them out
            (`num_train_epochs`, `learning_rate`, `per_device_train_batch_size`).
        stages: training stages in order (one for most models; CodeTalker and LG-LDM train a VQ-VAE first).
        train_kwargs: `forward` keyword arguments in training, from the parsed arguments.
        eval_kwargs: `forward` keyword arguments for the validation loss.
        predict_kwargs: `predict` keyword arguments at test time.
        prepare: called once on a new model with the training split before training (not on resume: the
            checkpoint holds the result).
        paper / card_paragraph / objective: what the model card says.
    """

    name: str
    display_name: str
    config_class: type
    model_class: type
    defaults: dict
    paper: str
    card_paragraph: str
    objective: str
    stages: tuple[str, ...] = ("train",)
    train_kwargs: Callable[[object], dict] = lambda args: {}
    eval_kwargs: dict = field(default_factory=dict)
    predict_kwargs: dict = field(default_factory=dict)
    prepare: Callable | None = None

    def preset_for(self, dataset: str, preset: str | None) -> str:
        """The config preset: `preset` when given, else the dataset's."""
        name = (preset or dataset).lower()
        if name not in self.config_class.presets:
            raise ValueError(
                f"{self.display_name} has no preset {name!r}; choose from {sorted(self.config_class.presets)}."
            )
        return name


def training_offsets(dataset, max_frames: int = 20000, seed: int = 0) -> torch.Tensor:
    """`(N, V*3)` vertex offsets (vertices minus template) of up to `max_frames` training frames, spread over the
    sequences (for VOCA's PCA initialisation of its expression layer)."""
    offsets = [item["labels"] - item["template"][None] for item in (dataset[i] for i in range(len(dataset)))]
    offsets = np.concatenate(offsets)
    if len(offsets) > max_frames:
        offsets = offsets[np.random.default_rng(seed).choice(len(offsets), max_frames, replace=False)]
    return torch.from_numpy(offsets)


def _voca_prepare(model, train_set):
    model.init_expression_basis(training_offsets(train_set))


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
}


def get_recipe(name: str) -> AnimationRecipe:
    try:
        return ANIMATION_RECIPES[name.lower()]
    except KeyError:
        raise ValueError(f"--model must be one of {sorted(ANIMATION_RECIPES)}, got {name!r}.") from None
