# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""The model side of the diffusion animation models (FaceDiffuser, LG-LDM): what their model files share, in torch
only, so that they still work as Hub remote code without `diffusers`.

Read top to bottom: the cosine schedule and q(x_t | x_0) for training (tested equal to diffusers'
`DDPMScheduler.add_noise`), per-item random generators, the conditioning a sampler reuses at every step, and
`AnimationDiffusionMixin`, which gives a model its training noise and a `predict` that samples through
`AnimationDiffusionPipeline` (`pipeline_animation_diffusion.py`, imported lazily: it needs `diffusers`). The hooks a
model implements for the pipeline are listed in that file's docstring.

Shapes: B batch, T vertex frames, V3 = V*3 flattened vertices; a sample of one item has the model's
`latent_shape(T)` (FaceDiffuser: `(T, V3)`), its first axis the (vertex or latent) frames.
"""

import math
from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

# ----------------------------------------------------------------------------------------------------------------------
# Schedule and q(x_t | x_0)
# ----------------------------------------------------------------------------------------------------------------------


def cosine_alphas_cumprod(num_train_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
    """`(N,)` alpha-bar of the cosine schedule (Nichol & Dhariwal; diffusers' `"squaredcos_cap_v2"`, guided
    diffusion's `"cosine"`): beta_i = min(1 - a(i+1) / a(i), max_beta) with a(t) = cos((t / N + 0.008) / 1.008 * pi/2)^2,
    alpha-bar = cumprod(1 - beta), computed as diffusers does (betas in float32)."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    n = num_train_timesteps
    betas = [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)]
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float32), dim=0)


def add_noise(sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor):
    """x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) noise, for `(B, ...)` samples and `(B,)` steps."""
    alpha_bar = alphas_cumprod.to(sample.device)[timesteps.to(sample.device)].to(sample.dtype)
    alpha_bar = alpha_bar.reshape(-1, *([1] * (sample.dim() - 1)))
    return alpha_bar.sqrt() * sample + (1 - alpha_bar).sqrt() * noise


# ----------------------------------------------------------------------------------------------------------------------
# Per-item random generators
# ----------------------------------------------------------------------------------------------------------------------


def item_generators(generator, batch: int, device=None) -> list:
    """One generator per item: `None` (torch's global RNG for all), an `int` seed (a new generator with that seed for
    every item, so that an item samples the same alone and in a batch), a `torch.Generator` (shared, drawn in item
    order) or a list of `batch` generators (diffusers' convention)."""
    if generator is None or isinstance(generator, torch.Generator):
        return [generator] * batch
    if isinstance(generator, int) and not isinstance(generator, bool):
        device = torch.device(device if device is not None else "cpu")
        return [torch.Generator(device=device).manual_seed(generator) for _ in range(batch)]
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch or not all(g is None or isinstance(g, torch.Generator) for g in generator):
            raise ValueError(f"generator: a list needs {batch} torch.Generator (one per item), got {len(generator)}.")
        return list(generator)
    raise ValueError(f"generator must be None, an int seed, a torch.Generator or a list of them, got {generator!r}.")


def randn_for(shape, generator, device, dtype) -> torch.Tensor:
    """Standard normal noise of `shape` from `generator` (drawn on the generator's device), on `device`."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def pad_items(items: list[torch.Tensor]) -> torch.Tensor:
    """`(B, max len, ...)` from per-item `(len_b, ...)` tensors, zero-padded along the first axis."""
    output = items[0].new_zeros(len(items), max(item.shape[0] for item in items), *items[0].shape[1:])
    for b, item in enumerate(items):
        output[b, : item.shape[0]] = item
    return output


# ----------------------------------------------------------------------------------------------------------------------
# Conditioning
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class DiffusionConditioning(ModelOutput):
    r"""What the denoiser is conditioned on, computed once per clip (the audio encoder runs here) and reused at every
    denoising step. A model may subclass it with fields of its own.

    frames (`list[int]`): vertex frames per item.
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): real frames; `None` when all have `T`.
    audio_features (`torch.FloatTensor` of shape `(B, k*T, C)`): the audio encoder's output at the vertex-aligned rate
        (F_p, or F_d for a fused encoder).
    template (`torch.FloatTensor` of shape `(B, V*3)`): the neutral meshes.
    subject_one_hot (`torch.FloatTensor` of shape `(B, S)`): the speaking styles.
    labels (`torch.FloatTensor` of shape `(B, T, V*3)`, *optional*): training targets, fitted to the audio's frames.
    """

    frames: list | None = None
    vertex_mask: torch.BoolTensor | None = None
    audio_features: torch.FloatTensor | None = None
    template: torch.FloatTensor | None = None
    subject_one_hot: torch.FloatTensor | None = None
    labels: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Model mixin
# ----------------------------------------------------------------------------------------------------------------------


class AnimationDiffusionMixin:
    """Training noise and sampling for an `AnimationPreTrainedModel` whose output is sampled by diffusion.

    The model implements `encode_conditioning(...) -> DiffusionConditioning`, `latent_shape(frames)`,
    `denoise(sample, timesteps, conditioning)` and, when it samples latents, `decode_latents(sample, conditioning)`;
    its config has `num_train_timesteps`, `beta_schedule`, `prediction_type` and `num_inference_steps` (optional
    `diffusion_scheduler`, `variance_type`, `clip_sample`). See `pipeline_animation_diffusion.py`.
    """

    def latent_shape(self, frames: int) -> tuple[int, ...]:
        """The shape of one item's sample for `frames` vertex frames."""
        raise NotImplementedError

    def decode_latents(self, sample: torch.Tensor, conditioning: DiffusionConditioning) -> torch.Tensor:
        """`(B, T, V*3)` vertices from the final samples: the samples themselves for a model over vertices."""
        return sample

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """`(N,)` alpha-bar of `config.beta_schedule` (the cosine schedule), float32, cached."""
        cached = getattr(self, "_alphas_cumprod", None)
        if cached is None or cached.shape[0] != self.config.num_train_timesteps:
            if self.config.beta_schedule != "squaredcos_cap_v2":
                raise ValueError(f"Only the cosine schedule is implemented, got {self.config.beta_schedule!r}.")
            cached = self._alphas_cumprod = cosine_alphas_cumprod(self.config.num_train_timesteps)
        return cached

    def add_noise(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) for `(B, ...)` clean samples, noise and `(B,)` steps."""
        return add_noise(sample, noise, timesteps, self.alphas_cumprod)

    def training_noise(self, lengths: list[int], sample: torch.Tensor, generator=None):
        """`(B,)` steps drawn uniformly from [0, N) and `sample`-shaped noise, per item from `item_generators`
        (noise over each item's first `lengths[b]` frames, its own `latent_shape`; zero beyond): with an `int` seed
        an item gets the same step and noise alone and in a batch. `None` draws from torch's global RNG."""
        generators = item_generators(generator, sample.shape[0], sample.device)
        steps, noises = [], []
        for g, length in zip(generators, lengths):
            device = sample.device if g is None else g.device
            steps.append(torch.randint(0, self.config.num_train_timesteps, (1,), generator=g, device=device))
            noises.append(randn_for((length, *sample.shape[2:]), g, sample.device, sample.dtype))
        noise = sample.new_zeros(sample.shape)
        noise[:, : max(lengths)] = pad_items(noises)
        return torch.cat(steps).to(sample.device), noise

    def diffusion_pipeline(self, scheduler=None):
        """An `AnimationDiffusionPipeline` over this model (the scheduler from the config unless given)."""
        try:
            from .pipeline_animation_diffusion import AnimationDiffusionPipeline
        except ImportError as error:  # diffusers is missing
            raise ImportError(
                f"Sampling from {type(self).__name__} needs diffusers' schedulers: pip install 'diffusers>=0.30,<1' "
                f"({error})."
            ) from error
        return AnimationDiffusionPipeline(self, scheduler=scheduler)

    @torch.no_grad()
    def predict(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index: torch.Tensor | int | str | list | None = None,
        attention_mask: torch.Tensor | None = None,
        num_frames: int | torch.Tensor | None = None,
        subject_one_hot: torch.Tensor | None = None,
        num_inference_steps: int | None = None,
        generator=0,
        encode_every_step: bool = False,
        scheduler=None,
        return_dict: bool | None = None,
    ):
        r"""Animate a clip by sampling (call `.eval()` first): `vertices` `(B, T, V*3)` at `config.frame_rate`,
        floor(duration * frame_rate) frames per clip unless `num_frames` is given, and `vertex_mask` for a batch of
        unequal clips. The audio encoder runs once per clip.

        Args:
            num_inference_steps (`int`, *optional*): sampler steps; `config.num_inference_steps`, else the full
                chain of `config.num_train_timesteps` (the published sampling).
            generator (`int`, `torch.Generator`, list, or `None`, defaults to `0`): the noise. By default each item is
                sampled from its own generator seeded with 0, so `predict` is deterministic and an item gives the same
                vertices alone and in a batch; another seed gives another sample; `None` draws from torch's global RNG.
            encode_every_step (`bool`, defaults to `False`): re-run the audio encoder at every step, as the published
                code does (identical vertices in eval mode; for comparisons only).
            scheduler (*optional*): a diffusers scheduler instead of the one the config describes.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        output = self.diffusion_pipeline(scheduler)(
            input_values,
            template,
            subject_index=subject_index,
            attention_mask=attention_mask,
            num_frames=num_frames,
            subject_one_hot=subject_one_hot,
            num_inference_steps=num_inference_steps,
            generator=generator,
            encode_every_step=encode_every_step,
        )
        return output if return_dict else output.to_tuple()

    generate = predict


__all__ = [
    "AnimationDiffusionMixin",
    "DiffusionConditioning",
    "add_noise",
    "cosine_alphas_cumprod",
    "item_generators",
    "pad_items",
    "randn_for",
]
