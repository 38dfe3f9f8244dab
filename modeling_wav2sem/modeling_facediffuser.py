# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""PyTorch FaceDiffuser (Stan et al., "FaceDiffuser: Speech-Driven Facial Animation Synthesis Using Diffusion",
MIG 2023) as a transformers model whose audio encoder is any wav2vec2-family model loaded with `AutoModel` (the
published HuBERT base, Wav2Vec2, WavLM, ...) or a `Wav2SemFusedEncoder` (baseline + Wav2Sem).

Written fresh from a description of the published model (its code is CC BY-NC 4.0). Where the description left a
detail open it was checked by running the published `FaceDiff` module locally on the same random weights, converted
with `convert_facediffuser_original_checkpoint` (their code is not part of this repository): VOCASET preset widths
(V*3 = 15069, d = 256), a random HuBERT of base width (4 layers), 60 frames, fp32, CPU: the denoiser's x0 is
bit-identical (max |diff| 0 at t = 0, N/2, N-1), and a whole ancestral chain of the published `p_sample_loop` with the
same noise sequence matches `predict` to max |diff| 3.0e-8 (N = 10) and 0 (N = 50), values ~0.4.

Read top to bottom: the output, the pre-trained base (initialisation, freezing), the model: conditioning (run once per
clip), the denoiser, the training forward. Sampling is `predict`, from `AnimationDiffusionMixin`, which runs diffusers'
DDPM (cosine schedule, x0 prediction, fixed-small variance, no clipping: the published sampler) through
`pipeline_animation_diffusion.py`. Imports only torch, transformers and the sibling files (not diffusers), so the file
doubles as Hub remote code.

Differences from the published code, on purpose: batches of any size (the published reshape and its Conv1d over the
feature axis hard-code batch 1; here every frame goes through them on its own, which is the same computation) with
attention and vertex masks; the audio encoder runs once per clip when sampling instead of at every step (identical in
eval mode, tested); VOCASET's speakers are parsed from `FaceTalk_...` names correctly (the published loader's
`split("_")[0]` and `test + val + test` subject list drop the training speakers, see its issue #8); the loss is
averaged over real frames only.

Shapes: B batch, L samples, T vertex frames, k audio frames per vertex frame (2), C encoder width, d latent width,
S training speakers, N diffusion steps, V3 = V*3 flattened vertices.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transformers import initialization as init

from .configuration_facediffuser import FaceDiffuserConfig
from .modeling_animation import AnimationOutput, AnimationPreTrainedModel
from .modeling_animation_diffusion import AnimationDiffusionMixin, DiffusionConditioning

# ----------------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class FaceDiffuserOutput(AnimationOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        Huber loss (delta `config.huber_delta`) between the predicted and the true x0 (absolute vertices), mean over
        the real frames and all values; when `labels` are given.
    vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        The denoiser's x0 prediction from `noisy_vertices` at `timesteps` (absolute vertices). `predict` returns
        sampled vertices instead.
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*):
        True on each item's real frames; `None` when every item has all `T` frames.
    audio_features (`torch.FloatTensor` of shape `(B, 2*T, C)`):
        The audio encoder's output at the vertex-aligned rate (F_p, or F_d for a fused encoder), before pairing.
    last_hidden_state (`torch.FloatTensor` of shape `(B, T, d)`):
        The GRU output times the speaking style, before `final_layer`.
    noisy_vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        x_t, the denoiser's input.
    timesteps (`torch.LongTensor` of shape `(B,)`):
        The diffusion step of each item.
    """

    noisy_vertices: torch.FloatTensor | None = None
    timesteps: torch.LongTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Pre-trained base class
# ----------------------------------------------------------------------------------------------------------------------


class FaceDiffuserPreTrainedModel(AnimationPreTrainedModel):
    """FaceDiffuser's initialisation (PyTorch's defaults, the output layer at zero), its frozen encoder parts, and the
    Hub plumbing."""

    config: FaceDiffuserConfig
    config_class = FaceDiffuserConfig
    base_model_prefix = "facediffuser"
    resample_point = "output"  # the published code interpolates / cuts the encoder's output frames

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if module is getattr(self, "final_layer", None):
            init.zeros_(module.weight)  # the published zero-initialised output: x0 starts at the template
            init.zeros_(module.bias)
            return
        if isinstance(module, nn.GRU):  # nn.GRU.reset_parameters: U(-1/sqrt(hidden), 1/sqrt(hidden))
            bound = 1.0 / module.hidden_size**0.5
            for weight in module.parameters():
                init.uniform_(weight, -bound, bound)
            return
        super()._init_weights(module)

    def _apply_freezing(self):
        """The conv feature encoder, and as published the feature projection and encoder layers 0 and 1."""
        super()._apply_freezing()
        backbone = self.speech_backbone
        if self.config.freeze_feature_projection and hasattr(backbone, "feature_projection"):  # (Whisper has none)
            backbone.feature_projection.requires_grad_(False)
        layers = backbone.encoder.layers if hasattr(backbone, "encoder") else backbone.layers  # Whisper: its own
        for index in self.config.frozen_encoder_layers:
            layers[index].requires_grad_(False)


# ----------------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------------


class FaceDiffuserForAnimation(AnimationDiffusionMixin, FaceDiffuserPreTrainedModel):
    r"""
    FaceDiffuser: a diffusion model over whole vertex sequences, with a GRU denoiser that predicts x0.

    Conditioning (once per clip): audio (B, L) -> audio encoder -> 50 Hz output (B, N, C), interpolated (VOCASET) or
    cut (BIWI) to 2 frames per vertex frame (B, 2T, C) -> pairs concatenated (B, T, 2C).
    Denoiser (per step): `cond_projection` Linear(2C, d) of the pairs; `input_projection` of x_t (B, T, V3): per
    frame Linear(V3, 2d) -> Conv1d(1, 1, 9, 'same') over the 2d features -> ReLU -> MaxPool1d(2, 2) -> ReLU (d); the
    step as a one-hot -> `time_mlp` Linear(N, d) + Mish, repeated over frames; [audio, motion, time] -> `norm_cond`
    LayerNorm(3d) -> `gru` GRU(3d, d, 2 layers, dropout 0.3) -> times `obj_vector` Linear(S, d, no bias) of the style
    one-hot -> `final_layer` Linear(d, V3) (zero-initialised) -> + template = x0.

    Training (`forward` with `labels`): a uniform step per sequence, x_t = q(x_t | x0 = labels) from the cosine
    schedule, Huber loss between the predicted and the true x0. Not autoregressive: the denoiser sees the whole noisy
    sequence. Sampling (`predict`): ancestral DDPM over all `num_train_timesteps` steps by default (1000 VOCASET, 500
    BIWI), seeded, the audio encoder run once.

    Module names follow the published ones (`cond_projection`, `input_projection`, `time_mlp`, `norm_cond`, `gru`,
    `obj_vector`, `final_layer`), so the converter maps them one to one. The audio encoder's conv feature encoder,
    feature projection and layers 0-1 are frozen (`config.frozen_encoder_layers`).

    Example:

    ```python
    >>> import torch
    >>> from transformers import HubertConfig
    >>> from modeling_wav2sem import FaceDiffuserConfig, FaceDiffuserForAnimation
    >>> audio_config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    >>> config = FaceDiffuserConfig.from_preset("vocaset", audio_config=audio_config, vertice_dim=60,
    ...                                         feature_dim=16, gru_hidden_size=16, num_train_timesteps=20)
    >>> model = FaceDiffuserForAnimation(config).eval()
    >>> out = model.predict(torch.randn(1, 16000), torch.zeros(60), subject_index=0, generator=0)
    >>> out.vertices.shape  # 1 s at 30 fps
    torch.Size([1, 29, 60])
    ```
    """

    def __init__(self, config: FaceDiffuserConfig, audio_encoder=None):
        super().__init__(config)
        self.init_audio_encoder(audio_encoder)
        d, k = config.feature_dim, config.audio_frames_per_vertex_frame
        self.cond_projection = nn.Linear(k * config.audio_hidden_size, d)
        self.input_projection = nn.Sequential(
            nn.Linear(config.vertice_dim, 2 * d),
            nn.Conv1d(1, 1, kernel_size=config.conv_kernel_size, padding="same"),
            nn.ReLU(),
            nn.MaxPool1d(kernel_size=2, stride=2),
            nn.ReLU(),
        )
        self.time_mlp = nn.Sequential(nn.Linear(config.num_train_timesteps, d), nn.Mish())
        self.norm_cond = nn.LayerNorm(3 * d)
        self.gru = nn.GRU(
            3 * d, config.gru_hidden_size, num_layers=config.gru_num_layers, batch_first=True,
            dropout=config.gru_dropout if config.gru_num_layers > 1 else 0.0,
        )
        self.obj_vector = nn.Linear(config.num_subjects, d, bias=False)
        self.final_layer = nn.Linear(config.gru_hidden_size, config.vertice_dim)
        self.post_init()

    # -- conditioning (the audio encoder runs here, once per clip) ------------------------------------------------------

    def encode_conditioning(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index=None,
        attention_mask: torch.Tensor | None = None,
        subject_one_hot: torch.Tensor | None = None,
        num_frames=None,
        labels: torch.Tensor | None = None,
        vertex_mask: torch.Tensor | None = None,
    ) -> DiffusionConditioning:
        r"""Everything the denoiser is conditioned on (inputs as `forward`'s).

        Returns:
            `DiffusionConditioning`: `frames`, `vertex_mask`, `audio_features` `(B, 2T, C)`, `template` `(B, V3)`,
            `subject_one_hot` `(B, S)` and, with `labels`, the labels fitted to the audio's frames `(B, T, V3)`.
        """
        audio_features, frames, labels, vertex_mask = self.encode_inputs(
            input_values, attention_mask, labels, vertex_mask, num_frames
        )
        batch, dtype, device = input_values.shape[0], audio_features.dtype, audio_features.device
        conditioning = DiffusionConditioning(
            frames=frames,
            vertex_mask=vertex_mask,
            audio_features=audio_features,
            template=self.prepare_template(template, batch, dtype).to(device),
            subject_one_hot=self.style_one_hot(subject_index, subject_one_hot, batch, device, dtype),
            labels=labels,
        )
        return conditioning

    def latent_shape(self, frames: int) -> tuple[int, int]:
        """FaceDiffuser samples vertices: `(frames, V*3)` per item."""
        return (frames, self.config.vertice_dim)

    # -- denoiser -------------------------------------------------------------------------------------------------------

    def denoise(
        self,
        noisy_vertices: torch.Tensor,
        timesteps: torch.Tensor,
        conditioning: DiffusionConditioning,
        return_hidden: bool = False,
    ):
        r"""x0 from x_t.

        Args:
            noisy_vertices (`(B, T, V3)`): x_t, absolute vertices.
            timesteps (`(B,)` integers in [0, N)): each item's diffusion step.
            conditioning (`DiffusionConditioning`): from `encode_conditioning` (reused at every step).
            return_hidden: also return the `(B, T, d)` GRU output times the style.

        Returns:
            `(B, T, V3)` the predicted clean vertices (and the hidden states).
        """
        batch, frames, _ = noisy_vertices.shape
        audio = conditioning.audio_features
        k = self.config.audio_frames_per_vertex_frame
        if audio.shape[1] != k * frames:
            raise ValueError(f"noisy_vertices has {frames} frames, the audio features {audio.shape[1]} (need {k}x).")
        timesteps = torch.as_tensor(timesteps, device=noisy_vertices.device).long().reshape(-1)
        if timesteps.numel() == 1:
            timesteps = timesteps.expand(batch)
        if timesteps.numel() != batch or bool(((timesteps < 0) | (timesteps >= self.config.num_train_timesteps)).any()):
            raise ValueError(
                f"timesteps must be {batch} integers in [0, {self.config.num_train_timesteps}), got {timesteps.tolist()}."
            )
        dtype = self.cond_projection.weight.dtype
        audio_tokens = self.cond_projection(audio.reshape(batch, frames, -1).to(dtype))  # (B, T, d): pairs concatenated
        motion = self.input_projection(noisy_vertices.to(dtype).reshape(batch * frames, 1, -1))  # every frame alone
        motion = motion.reshape(batch, frames, -1)  # (B, T, d)
        time = self.time_mlp(F.one_hot(timesteps, self.config.num_train_timesteps).to(dtype))  # (B, d)
        tokens = torch.cat([audio_tokens, motion, time[:, None].expand(-1, frames, -1)], dim=-1)
        hidden, _ = self.gru(self.norm_cond(tokens))  # unidirectional: padding after a clip does not reach it
        hidden = hidden * self.obj_vector(conditioning.subject_one_hot.to(dtype))[:, None]
        x0 = self.final_layer(hidden) + conditioning.template[:, None].to(dtype)
        return (x0, hidden) if return_hidden else x0

    # -- training forward -----------------------------------------------------------------------------------------------

    def forward(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index: torch.Tensor | int | str | list | None = None,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        vertex_mask: torch.Tensor | None = None,
        subject_one_hot: torch.Tensor | None = None,
        num_frames: int | torch.Tensor | None = None,
        noisy_vertices: torch.Tensor | None = None,
        timesteps: torch.Tensor | int | None = None,
        noise: torch.Tensor | None = None,
        generator=None,
        num_inference_steps: int | None = None,
        return_dict: bool | None = None,
    ) -> FaceDiffuserOutput | tuple:
        r"""The training loss with `labels`; x0 for given `noisy_vertices` at `timesteps` (one denoising pass);
        without either, sampled vertices as `predict` gives them.

        Args:
            input_values (`torch.FloatTensor` of shape `(B, L)`): 16 kHz audio as the encoder expects it, right-padded.
            template (`torch.FloatTensor` of shape `(B, V*3)` or `(B, V, 3)`): each speaker's neutral mesh.
            subject_index (`torch.LongTensor` of shape `(B,)`, `int`, `str` or list): the training speaker(s) whose
                style to use, by index in `config.train_subjects` or by name.
            labels (`torch.FloatTensor` of shape `(B, T, V*3)` or `(B, T, V, 3)`, *optional*): ground-truth vertices
                x0 (absolute). With them: x_t = q(x_t | x0) at `timesteps` with `noise` (each drawn per item when not
                given) and `loss` = Huber(x0_hat, x0) over the real frames.
            attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*): 1 on real audio samples.
            vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): 1 on real frames of `labels` (right-padded).
            subject_one_hot (`torch.FloatTensor` of shape `(B, S)`, *optional*): instead of `subject_index`.
            num_frames (`int` or `(B,)`, *optional*): frames without `labels`; by default from the audio duration.
            noisy_vertices (`torch.FloatTensor` of shape `(B, T, V*3)`, *optional*): x_t to denoise (without labels).
            timesteps (`torch.LongTensor` of shape `(B,)` or `int`, *optional*): the diffusion steps; drawn uniformly
                per item with `labels` when not given.
            noise (`torch.FloatTensor` of shape `(B, T, V*3)`, *optional*): the noise of q(x_t | x0).
            generator (`int`, `torch.Generator`, list or `None`): where the steps and noise are drawn from (see
                `item_generators`; an `int` seed gives each item the same draw alone and in a batch). `None`: torch's
                global RNG (training); when sampling, `predict`'s default (seed 0).
            num_inference_steps (`int`, *optional*): sampler steps when sampling (see `predict`).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if labels is None and noisy_vertices is None:
            if timesteps is not None or noise is not None:
                raise ValueError("timesteps / noise need labels (training) or noisy_vertices (one denoising step).")
            return self.predict(
                input_values, template, subject_index=subject_index, attention_mask=attention_mask,
                num_frames=num_frames, subject_one_hot=subject_one_hot, num_inference_steps=num_inference_steps,
                generator=0 if generator is None else generator, return_dict=return_dict,
            )
        if num_inference_steps is not None:
            raise ValueError("num_inference_steps is for sampling (no labels, no noisy_vertices).")
        conditioning = self.encode_conditioning(
            input_values, template, subject_index, attention_mask, subject_one_hot, num_frames, labels, vertex_mask
        )
        frames, vertex_mask, labels = conditioning.frames, conditioning.vertex_mask, conditioning.labels
        batch, total = input_values.shape[0], max(frames)
        if labels is not None:
            labels = labels.to(conditioning.audio_features.dtype)
            drawn_steps, drawn_noise = self.training_noise(frames, labels, generator)
            timesteps = drawn_steps if timesteps is None else timesteps
            noise = drawn_noise if noise is None else noise
            if noise.shape != labels.shape:
                raise ValueError(f"noise must have the labels' shape {tuple(labels.shape)}, got {tuple(noise.shape)}.")
            timesteps = torch.as_tensor(timesteps, device=labels.device).long().reshape(-1).expand(batch)
            noisy_vertices = self.add_noise(labels, noise, timesteps)
        elif timesteps is None:
            raise ValueError("noisy_vertices need their timesteps (one denoising step).")
        else:
            noisy_vertices = self.flat_vertices(noisy_vertices, "noisy_vertices", 3)
            if noisy_vertices.shape[:2] != (batch, total):
                raise ValueError(f"noisy_vertices must have {(batch, total)} as its first dims (the audio's frames), "
                                 f"got {tuple(noisy_vertices.shape)}.")
        x0, hidden = self.denoise(noisy_vertices, timesteps, conditioning, return_hidden=True)

        loss = None
        if labels is not None:
            loss = masked_huber_loss(x0, labels, vertex_mask, self.config.huber_delta)
        output = FaceDiffuserOutput(
            loss=loss,
            vertices=x0,
            vertex_mask=vertex_mask,
            audio_features=conditioning.audio_features,
            last_hidden_state=hidden,
            noisy_vertices=noisy_vertices,
            timesteps=torch.as_tensor(timesteps, device=x0.device).long().reshape(-1).expand(batch),
        )
        return output if return_dict else output.to_tuple()


def masked_huber_loss(prediction: torch.Tensor, target: torch.Tensor, vertex_mask: torch.Tensor | None, delta: float):
    """Huber loss (`torch.nn.HuberLoss(delta)`, mean) over the real frames of `(B, T, V3)` tensors, in fp32."""
    loss = F.huber_loss(prediction.float(), target.float(), reduction="none", delta=delta)
    if vertex_mask is None:
        return loss.mean()
    weights = vertex_mask[:, :, None].to(loss.dtype)
    return (loss * weights).sum() / (weights.sum() * loss.shape[-1])


__all__ = ["FaceDiffuserForAnimation", "FaceDiffuserOutput", "FaceDiffuserPreTrainedModel", "masked_huber_loss"]
