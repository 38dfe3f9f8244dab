# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""PyTorch LG-LDM (Song et al., IEEE TVCG 2024; github.com/wangxuanx/Face-Diffusion-Model, Apache-2.0) as a
transformers model.

Stage 1 is CodeTalker's VQ-VAE (`CodeTalkerVQVAE`, trained by the same stage as CodeTalker's). Stage 2,
[`LGLDMForAnimation`], is a latent diffusion model: its denoiser (FDM) predicts the clean stage-1 latent x0 of a whole
sequence from the noisy latent x_t, the step t, the audio and the speaking style; the frozen stage 1 quantises and
decodes the sampled latent to vertex offsets. The audio encoder is any wav2vec2-family `AutoModel` or a
`Wav2SemFusedEncoder`: its `last_hidden_state` (F_p, or the fused F_d) goes through `audio_extract`, the published
entry point of the audio.

Read top to bottom: the output, the cosine schedule's q(x_t | x_0), the pre-trained base (init, frozen stage 1), the
model (conditioning, denoiser, decoding, training forward, sampling). Imports only torch, transformers and the sibling
files, so the file doubles as Hub remote code; the sampling loop with diffusers' schedulers lives beside it, in
`pipeline_animation_diffusion.py`, which `predict` uses. Module names follow the published FDM (`audio_extract`,
`time_embedd`, `style_embedd`, `latent_encoder`, `transformer_decoder`, `latent_decoder`), with its `nn.Sequential`
wrappers flattened (`convert_lgldm_original_checkpoint.py` maps the keys); the stage 1 is `autoencoder`.

**Reconstructed where the published VOCASET and BIWI code does not hold together** (the repository's MEAD denoiser,
`models/fdm_vqvae_mead.py`, is its one internally consistent variant; we follow its structure with the VOCASET and
BIWI widths of `fdm_vocaset.py` and `fdm.py`):

- audio alignment: the published VOCASET denoiser truncates HuBERT's 50 Hz frames to the 30 fps latent length and
  pairs them 1:1 (frame t hears audio at t / 50 s, drifting 0.4 s per second), and its sampling script sizes the
  latent by the 50 Hz frame count (5/3 too many frames). We bring the encoder's 50 Hz output to the vertex rate, as
  the MEAD variant pairs its frames: VOCASET interpolates it to one frame per 30 fps vertex frame
  (`audio_extract` keeps the published Linear(C, d)); BIWI keeps two 50 Hz frames per 25 fps frame, concatenated
  (Linear(2C, d), the published pairing and truncation). The latent length is the vertex frame count of the audio;
- BIWI's published denoiser defaults to an encoder over [time token, audio, latents] that attends over length-1
  sequences and returns one position, with a latent of the wrong width (`fdm.py`'s `struct='Enc'`, the one its
  training script builds); we use its `struct='Dec'` path, i.e. the decoder all variants share, with period 25;
- positional encoding: the periodic one (FaceFormer's, period 30 / 25; VOCASET's published choice) for both
  datasets; BIWI's and MEAD's non-periodic sinusoid is not used;
- widths: `latent_encoder` / `latent_decoder` map n*c <-> d (the published Linear(d, d) needs n*c = d, true for the
  published VOCASET 16 x 64 and BIWI 8 x 128 at d = 1024, so published weights load unchanged);
- batches: the published code works with batch 1 (its style and time embeddings broadcast only then); here each item
  of a right-padded batch gets its own style, step and frames (the self-attention is causal and the memory mask
  diagonal, so padding never reaches a real frame);
- the schedule: diffusers' `squaredcos_cap_v2` (betas clipped to 0.999; the published clip is 0.9999, which changes
  only the last of 1000 betas) so that training's q(x_t | x_0) and diffusers' samplers share one schedule;
- sampling (the pipeline): DDIM with eta 0 over the published steps (999, 989, ..., 9 for 100 steps: diffusers'
  `"trailing"` spacing), returning the last x0 prediction (the published loop discards the last step's prediction
  and returns the noisy latent at t = 9); the audio features are computed once per sample (the published denoiser
  re-runs the audio encoder at every step; `encode_every_step=True` reproduces that, with the same result).

Kept from the published code: x0 prediction in the latent (pre-quantisation) space; the time embedding as
Linear(1000, d) + Mish over the step's one-hot; memory = audio_extract(audio) + time; zero-initialised
`latent_decoder`; the causal periodic ALiBi self-attention mask and diagonal memory mask; the loss MSE(x0_hat, x0) +
MSE(decode(quantise(x0_hat)) + template, GT) through the frozen stage 1's straight-through quantiser; the step drawn
uniformly from [0, 1000).

Checked against the published code (github.com/wangxuanx/Face-Diffusion-Model at d8d8376, `models/fdm_vocaset.py` run
locally, its HuBERT stubbed to return the same audio features): with the same random weights (mapped as
`convert_lgldm_original_checkpoint.py` maps them), the published VOCASET denoiser and `denoise` give bitwise the same
x0 prediction (max abs difference 0.0, outputs of about 2.5) at the published size (d 1024, 8 layers, 8 heads, 16 x 64
latents per frame), 40 frames, steps 0, 517 and 999. The stage 1 is CodeTalker's, checked in `modeling_codetalker.py`.

Shapes: B batch, L samples, T vertex frames, k audio frames per vertex frame (1 VOCASET, 2 BIWI), C encoder width, d
denoiser width, n tokens per frame, c code width, S training speakers, V3 = V*3.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transformers import initialization as init

from .configuration_lgldm import LGLDMConfig
from .modeling_animation import AnimationOutput, AnimationPreTrainedModel, masked_mean_squared_error
from .modeling_animation_diffusion import AnimationDiffusionMixin, DiffusionConditioning
from .modeling_codetalker import CodeTalkerVQVAE, FrozenVQVAEMixin
from .modeling_faceformer import FaceFormerDecoderMixin

# ----------------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class LGLDMOutput(AnimationOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        `latent_loss_weight` x MSE(x0_hat, x0) + `vertex_loss_weight` x MSE(vertices, labels), over the real frames;
        when `labels` are given.
    vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        The stage-1 decoding of the quantised x0_hat, plus the template.
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*):
        True on each item's real frames; `None` when every item has all `T` frames.
    audio_features (`torch.FloatTensor` of shape `(B, k*T, C)`):
        The audio encoder's `last_hidden_state` at the vertex-aligned rate (F_p, or F_d), before `audio_extract`.
    last_hidden_state (`torch.FloatTensor` of shape `(B, T, d)`, *optional*):
        The denoiser's last hidden states, before `latent_decoder`.
    latents (`torch.FloatTensor` of shape `(B, T, n*c)`):
        The predicted clean latents x0_hat, before quantisation.
    code_indices (`torch.LongTensor` of shape `(B, T*n)`):
        The codes they were quantised to.
    timesteps (`torch.LongTensor` of shape `(B,)`, *optional*):
        The diffusion step of each item.
    latent_loss (`torch.FloatTensor` of shape `()`, *optional*), vertex_loss (`torch.FloatTensor` of shape `()`,
    *optional*): the two loss terms.
    """

    latents: torch.FloatTensor | None = None
    code_indices: torch.LongTensor | None = None
    timesteps: torch.LongTensor | None = None
    latent_loss: torch.FloatTensor | None = None
    vertex_loss: torch.FloatTensor | None = None


@dataclass
class LGLDMConditioning(DiffusionConditioning):
    r"""What the denoiser is conditioned on, computed once per clip (`encode_conditioning`) and reused at every step.

    memory (`torch.FloatTensor` of shape `(B, T, d)`): `audio_extract` of the encoder's frames (k per vertex frame,
        concatenated); the step's time embedding is added to it at each step.
    style (`torch.FloatTensor` of shape `(B, 1, d)`): `style_embedd` (+ Mish) of the style one-hot.
    labels (`torch.FloatTensor` of shape `(B, T, V*3)`, *optional*): in training, the labels cut to the frames the
        audio gives.
    """

    memory: torch.FloatTensor | None = None
    style: torch.FloatTensor | None = None
    labels: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------------


class LGLDMPreTrainedModel(FrozenVQVAEMixin, AnimationPreTrainedModel):
    """Weight initialisation (PyTorch's defaults, zero `latent_decoder`; the stage-1 model's own), the frozen stage-1
    model and the Hub plumbing."""

    config: LGLDMConfig
    config_class = LGLDMConfig
    base_model_prefix = "lgldm"
    resample_point = "output"  # the published denoiser takes the encoder's 50 Hz output and pairs / cuts it
    _supports_flash_attn = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if module is getattr(self, "latent_decoder", None):
            init.zeros_(module.weight)  # the untrained denoiser predicts x0 = 0 (the original's init)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)


class LGLDMForAnimation(AnimationDiffusionMixin, FaceFormerDecoderMixin, LGLDMPreTrainedModel):
    r"""
    LG-LDM's stage 2: speech-driven 3D facial animation as latent diffusion over a frozen CodeTalker VQ-VAE.

    audio (B, L) -> audio encoder (50 Hz output brought to k frames per vertex frame, concatenated) -> `audio_extract`
    (Linear(k*C, d), Mish, Linear(d, d)) + `time_embedd` (Linear(1000, d) + Mish of the step's one-hot) = memory
    (B, T, d). Noisy latent x_t (B, T, n*c) -> `latent_encoder` (+ Mish) + `style_embedd` (+ Mish) of the one-hot ->
    periodic positional encoding -> Transformer decoder (causal periodic ALiBi mask, frame t attends to memory frame t)
    -> `latent_decoder` (zero-initialised) -> x0_hat (B, T, n*c) -> tokens (B, T*n, c) -> the frozen stage-1
    `autoencoder`'s quantiser and decoder -> + template.

    Training (`forward` with `labels`): x0 = the stage-1 encoding of the ground-truth offsets, t uniform in
    [0, num_train_timesteps), x_t from the cosine schedule, loss MSE(x0_hat, x0) + MSE(vertices, labels). Sampling
    (`predict`, from `AnimationDiffusionMixin`): DDIM (eta 0, `config.num_inference_steps`) from Gaussian noise through
    `AnimationDiffusionPipeline`, the audio encoded once. The stage-1 model is held as `autoencoder` (frozen, always in
    eval mode; its config is `config.vqvae_config`), so a saved folder is complete. Build one from an audio encoder and
    a trained stage 1 with `from_audio_encoder(..., vqvae=...)`.

    Example:

    ```python
    >>> from modeling_wav2sem import CodeTalkerVQVAE, LGLDMForAnimation
    >>> vqvae = CodeTalkerVQVAE.from_pretrained("path/to/stage1")
    >>> model = LGLDMForAnimation.from_audio_encoder("facebook/hubert-large-ls960-ft", dataset="vocaset", vqvae=vqvae)
    >>> out = model.eval().predict(audio, template, subject_index=0, generator=0)  # out.vertices: (1, T, 15069)
    ```
    """

    def __init__(self, config: LGLDMConfig, audio_encoder: nn.Module | None = None):
        super().__init__(config)
        self.init_audio_encoder(audio_encoder)

        d = config.feature_dim
        latent_dim = config.vqvae_config.latent_dim
        self.audio_extract = nn.Sequential(
            nn.Linear(config.audio_frames_per_vertex_frame * config.audio_hidden_size, d), nn.Mish(), nn.Linear(d, d)
        )
        self.time_embedd = nn.Linear(config.num_train_timesteps, d)
        self.style_embedd = nn.Linear(config.num_subjects, d)
        self.latent_encoder = nn.Linear(latent_dim, d)
        self.ppe_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerDecoderLayer(
            d_model=d,
            nhead=config.num_attention_heads,
            dim_feedforward=config.intermediate_size,
            dropout=config.dropout,
            batch_first=True,
        )
        self.transformer_decoder = nn.TransformerDecoder(layer, num_layers=config.num_hidden_layers)
        self.latent_decoder = nn.Linear(d, latent_dim)
        self.autoencoder = CodeTalkerVQVAE(config.vqvae_config)
        self._mask_cache: dict = {}
        self.post_init()

    # -- the sampling hooks (`AnimationDiffusionPipeline`) ------------------------------------------------------------

    def latent_shape(self, frames: int) -> tuple[int, int]:
        """`(T, n*c)`: one item's latent sample, a stage-1 latent per vertex frame (before quantisation)."""
        return (frames, self.config.vqvae_config.latent_dim)

    def encode_conditioning(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index=None,
        attention_mask: torch.Tensor | None = None,
        subject_one_hot: torch.Tensor | None = None,
        num_frames: int | torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        vertex_mask: torch.Tensor | None = None,
    ) -> LGLDMConditioning:
        """Everything the denoiser needs that does not depend on the step, computed once per clip: the audio
        encoder's frames (k per vertex frame, concatenated) through `audio_extract`, the style, the templates. With
        `labels`, the frames are theirs (cut to what the audio gives, returned as `conditioning.labels`)."""
        audio_features, frames, labels, vertex_mask = self.encode_inputs(
            input_values, attention_mask, labels, vertex_mask, num_frames
        )
        batch = input_values.shape[0]
        paired = audio_features.reshape(batch, max(frames), -1)  # (B, T, k*C)
        memory = self.audio_extract(paired)
        one_hot = self.style_one_hot(subject_index, subject_one_hot, batch, memory.device, memory.dtype)
        style = self.style_embedd(one_hot)
        if self.config.style_activation:
            style = F.mish(style)
        return LGLDMConditioning(
            frames=frames,
            vertex_mask=vertex_mask,
            audio_features=audio_features,
            template=self.prepare_template(template, batch, memory.dtype),
            subject_one_hot=one_hot,
            memory=memory,
            style=style.unsqueeze(1),
            labels=labels,
        )

    def time_embedding(self, timesteps: torch.Tensor) -> torch.Tensor:
        """`(B,)` steps -> `(B, 1, d)`: Linear(1000, d) of the step's one-hot (a column of its weight), then Mish."""
        timesteps = timesteps.to(self.time_embedd.weight.device).long()
        embedding = self.time_embedd.weight.t()[timesteps] + self.time_embedd.bias
        return F.mish(embedding).unsqueeze(1)

    def denoise(self, sample: torch.Tensor, timesteps: torch.Tensor, conditioning: LGLDMConditioning,
                output_hidden_state: bool = False):
        """The denoiser (FDM): noisy latents x_t `(B, T, n*c)` at steps `(B,)` -> x0_hat `(B, T, n*c)` (and, with
        `output_hidden_state`, the last hidden states `(B, T, d)`)."""
        memory = conditioning.memory
        memory = memory + self.time_embedding(timesteps).to(memory.dtype)
        hidden = self.latent_encoder(sample.to(memory.dtype))
        if self.config.latent_activation:
            hidden = F.mish(hidden)
        hidden = self._positional(hidden + conditioning.style)
        hidden = self._decode(hidden, memory, frames_per_vertex=1)  # after pairing, frame t's audio is memory frame t
        prediction = self.latent_decoder(hidden)
        return (prediction, hidden) if output_hidden_state else prediction

    def quantize_and_decode(self, sample: torch.Tensor, conditioning: LGLDMConditioning):
        """Latents `(B, T, n*c)` -> (vertices `(B, T, V3)`: the frozen stage 1's decoding of their nearest codes plus
        the template, the code indices `(B, T*n)`)."""
        vqvae, mask = self.autoencoder, conditioning.vertex_mask
        quantized, _, indices, _ = vqvae.quantize_latents(vqvae.tokens(sample), mask)
        vertices = vqvae.decode(quantized, mask) + conditioning.template[:, None].to(quantized.dtype)
        return vertices, indices

    def decode_latents(self, sample: torch.Tensor, conditioning: LGLDMConditioning) -> torch.Tensor:
        """Sampled latents `(B, T, n*c)` -> vertices `(B, T, V3)` (see `quantize_and_decode`)."""
        return self.quantize_and_decode(sample, conditioning)[0]

    # -- training ------------------------------------------------------------------------------------------------------

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
        timesteps: torch.Tensor | int | None = None,
        noise: torch.Tensor | None = None,
        generator=None,
        return_dict: bool | None = None,
        **predict_kwargs,
    ) -> LGLDMOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L)`): 16 kHz audio as the encoder expects it, right-padded.
            template (`torch.FloatTensor` of shape `(B, V*3)` or `(B, V, 3)`): each speaker's neutral mesh.
            subject_index (`torch.LongTensor` of shape `(B,)`, `int`, `str` or list): the training speaker(s) whose
                style to use, by index in `config.train_subjects` or by name.
            labels (`torch.FloatTensor` of shape `(B, T, V*3)` or `(B, T, V, 3)`, *optional*): ground-truth vertices.
                With them the forward returns the training loss; without, it samples (`predict`, which takes
                `predict_kwargs`: `num_inference_steps`, `generator`, ...).
            attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*): 1 on real audio samples.
            vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): 1 on real frames of `labels` (right-padded).
            subject_one_hot (`torch.FloatTensor` of shape `(B, num_subjects)`, *optional*): instead of `subject_index`.
            num_frames (`int` or `torch.LongTensor` of shape `(B,)`, *optional*): frames to sample without `labels`.
            timesteps (`torch.LongTensor` of shape `(B,)` or `int`, *optional*): each item's diffusion step; drawn
                uniformly from [0, num_train_timesteps) by default.
            noise (`torch.FloatTensor` of shape `(B, T, n*c)`, *optional*): the noise of q(x_t | x_0); standard normal
                by default.
            generator (`int`, `torch.Generator`, list or `None`): where the default step and noise come from (see
                `AnimationDiffusionMixin.training_noise`: an `int` seed gives each item the same draw alone and in a
                padded batch); torch's global RNG when `None`.
        """
        if labels is None:
            return self.predict(
                input_values, template, subject_index, attention_mask=attention_mask, num_frames=num_frames,
                subject_one_hot=subject_one_hot, return_dict=return_dict, **predict_kwargs,
            )
        if predict_kwargs:
            raise TypeError(f"forward() got unexpected keyword arguments with labels: {sorted(predict_kwargs)}.")
        return_dict = self.config.return_dict if return_dict is None else return_dict
        conditioning = self.encode_conditioning(
            input_values, template, subject_index, attention_mask, subject_one_hot, num_frames, labels, vertex_mask
        )
        labels, vertex_mask, template = conditioning.labels, conditioning.vertex_mask, conditioning.template
        with torch.no_grad():  # x0: the frozen stage 1's latents of the ground-truth motion (before quantisation)
            clean = self.autoencoder.encoder(labels.to(template.dtype) - template[:, None], vertex_mask)
        drawn_steps, drawn_noise = self.training_noise(conditioning.frames, clean, generator)
        timesteps = drawn_steps if timesteps is None else self._check_timesteps(timesteps, clean)
        if noise is None:
            noise = drawn_noise
        elif noise.shape != clean.shape:
            raise ValueError(f"noise must have the latents' shape {tuple(clean.shape)}, got {tuple(noise.shape)}.")
        noisy = self.add_noise(clean, noise.to(clean.dtype), timesteps)
        prediction, hidden = self.denoise(noisy, timesteps, conditioning, output_hidden_state=True)
        vertices, indices = self.quantize_and_decode(prediction, conditioning)

        latent_loss = masked_mean_squared_error(prediction, clean, vertex_mask)
        vertex_loss = masked_mean_squared_error(vertices, labels, vertex_mask)
        loss = self.config.latent_loss_weight * latent_loss + self.config.vertex_loss_weight * vertex_loss
        output = LGLDMOutput(
            loss=loss,
            vertices=vertices,
            vertex_mask=vertex_mask,
            audio_features=conditioning.audio_features,
            last_hidden_state=hidden,
            latents=prediction,
            code_indices=indices,
            timesteps=timesteps,
            latent_loss=latent_loss,
            vertex_loss=vertex_loss,
        )
        return output if return_dict else output.to_tuple()

    def _check_timesteps(self, timesteps, clean: torch.Tensor) -> torch.Tensor:
        batch = clean.shape[0]
        timesteps = torch.as_tensor(timesteps, device=clean.device).long()
        if timesteps.dim() == 0:
            timesteps = timesteps.reshape(1).expand(batch)
        if timesteps.shape != (batch,):
            raise ValueError(f"timesteps must be an int or have shape ({batch},), got {tuple(timesteps.shape)}.")
        if bool(((timesteps < 0) | (timesteps >= self.config.num_train_timesteps)).any()):
            raise ValueError(f"timesteps must be in [0, {self.config.num_train_timesteps}), got {timesteps.tolist()}.")
        return timesteps


__all__ = ["LGLDMConditioning", "LGLDMForAnimation", "LGLDMOutput", "LGLDMPreTrainedModel"]
