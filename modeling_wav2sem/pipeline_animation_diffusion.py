# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""`AnimationDiffusionPipeline`: the sampling loop of the diffusion animation models (FaceDiffuser, LG-LDM), kept
beside the models as diffusers keeps a denoiser apart from its scheduler. The noise schedules and samplers are
diffusers' (`DDPMScheduler`, `DDIMScheduler`); the model files never import this file at module level, so they load as
Hub remote code without diffusers (only `predict` needs it).

**What the pipeline does.** It encodes the audio once (`model.encode_conditioning`: the audio encoder's F_p or F_d,
templates, styles, frame counts), draws each item's starting noise, and for every step of the scheduler calls the
denoiser on the whole batch and the scheduler's step on each item's own frames with its own generator (so that an item
samples the same alone and in a padded batch); at the end `model.decode_latents` turns the samples into vertices.
`encode_every_step=True` re-runs the audio encoder at every step, as the published code does: in eval mode it gives the
same vertices, at 500 to 1000 encoder passes per clip instead of one.

**The hook contract** (what a model provides; `AnimationDiffusionMixin` in `modeling_animation_diffusion.py` gives
the defaults marked *):
- `encode_conditioning(input_values, template, subject_index=None, attention_mask=None, subject_one_hot=None,
  num_frames=None) -> DiffusionConditioning`: runs the audio encoder; the result has at least `frames` (vertex frames
  per item) and `vertex_mask`, and is handed back to the hooks below unchanged.
- `latent_shape(frames) -> tuple`: the shape of one item's sample, its first axis the frames (FaceDiffuser:
  `(frames, V*3)`; a latent model e.g. `(frames * tokens, code_dim)`).
- `denoise(sample, timesteps, conditioning) -> x0`: the clean-sample prediction for `(B, *latent_shape)` noisy samples
  and `(B,)` integer steps (`config.prediction_type == "sample"`; `"epsilon"` works as well with diffusers' steps).
- `decode_latents(sample, conditioning) -> vertices (B, T, V*3)` (*: the samples themselves).
- config fields `num_train_timesteps`, `beta_schedule`, `prediction_type`, `num_inference_steps` (the default steps;
  `None` for the full chain), and optionally `diffusion_scheduler` (`"ddpm"`, the default, or `"ddim"`),
  `variance_type` (DDPM, default `"fixed_small"`) and `clip_sample` (default `False`).

DDPM is ancestral sampling (FaceDiffuser's published `p_sample_loop` for the full chain); DDIM has eta 0 and
`"trailing"` steps, which for N = 1000 and n steps are LG-LDM's `linspace(-1, 999, n + 1)` pairs. Fewer DDPM steps
than N stride the chain the same way (it always starts at t = N - 1).
"""

import torch

from .modeling_animation import AnimationOutput
from .modeling_animation_diffusion import item_generators, pad_items, randn_for

try:  # not at import time of the model files: a missing diffusers only matters here
    from diffusers import DDIMScheduler, DDPMScheduler
except ImportError:  # pragma: no cover - checked when a pipeline is built
    DDIMScheduler = DDPMScheduler = None


def scheduler_from_config(config):
    """The diffusers scheduler a model's config describes (see the module docstring)."""
    if DDPMScheduler is None:
        raise ImportError("AnimationDiffusionPipeline needs diffusers: pip install 'diffusers>=0.30,<1'.")
    kind = getattr(config, "diffusion_scheduler", None) or "ddpm"
    common = dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
        clip_sample=bool(getattr(config, "clip_sample", False)),
        timestep_spacing="trailing",
    )
    if kind == "ddpm":
        return DDPMScheduler(variance_type=getattr(config, "variance_type", None) or "fixed_small", **common)
    if kind == "ddim":
        return DDIMScheduler(set_alpha_to_one=True, **common)
    raise ValueError(f"diffusion_scheduler must be 'ddpm' or 'ddim', got {kind!r}.")


class AnimationDiffusionPipeline:
    """Samples vertex sequences from a diffusion animation model (see the module docstring for what it needs).

    Args:
        model: a model implementing the hook contract (`FaceDiffuserForAnimation`, ...), usually in eval mode.
        scheduler (*optional*): a diffusers scheduler (`DDPMScheduler`, `DDIMScheduler`: stateless steps); by default
            the one `model.config` describes.
    """

    def __init__(self, model, scheduler=None):
        self.model = model
        self.scheduler = scheduler if scheduler is not None else scheduler_from_config(model.config)
        if self.scheduler.config.num_train_timesteps != model.config.num_train_timesteps:
            raise ValueError(
                f"The scheduler has {self.scheduler.config.num_train_timesteps} training steps, the model "
                f"{model.config.num_train_timesteps}."
            )

    @torch.no_grad()
    def __call__(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index=None,
        attention_mask: torch.Tensor | None = None,
        num_frames=None,
        subject_one_hot: torch.Tensor | None = None,
        num_inference_steps: int | None = None,
        generator=None,
        encode_every_step: bool = False,
    ) -> AnimationOutput:
        r"""
        Args:
            input_values (`(B, L)`), template (`(B, V*3)`), subject_index, attention_mask, num_frames, subject_one_hot:
                as the model's `predict`.
            num_inference_steps (`int`, *optional*): scheduler steps; the model's default when `None`.
            generator: `None` (torch's global RNG), an `int` seed (one generator with it per item), a
                `torch.Generator` or a list of one per item.
            encode_every_step (`bool`): re-run the audio encoder at every step (the published behaviour).

        Returns:
            `AnimationOutput` with `vertices` `(B, T, V*3)`, `vertex_mask` and `audio_features`.
        """
        model = self.model
        config = model.config
        steps = num_inference_steps or getattr(config, "num_inference_steps", None) or config.num_train_timesteps
        if not 1 <= steps <= config.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {config.num_train_timesteps}], got {steps}.")

        def encode():
            return model.encode_conditioning(
                input_values, template, subject_index=subject_index, attention_mask=attention_mask,
                subject_one_hot=subject_one_hot, num_frames=num_frames,
            )

        conditioning = encode()
        batch, device = input_values.shape[0], input_values.device
        dtype = conditioning.audio_features.dtype if conditioning.audio_features is not None else model.dtype
        shapes = [tuple(model.latent_shape(t)) for t in conditioning.frames]
        generators = item_generators(generator, batch, device)
        scheduler = self.scheduler
        scheduler.set_timesteps(steps, device=device)
        items = [randn_for(shape, g, device, dtype) * scheduler.init_noise_sigma for shape, g in zip(shapes, generators)]
        for t in scheduler.timesteps:
            if encode_every_step and t != scheduler.timesteps[0]:
                conditioning = encode()
            sample = pad_items(items)
            timesteps = torch.full((batch,), int(t), dtype=torch.long, device=device)
            prediction = model.denoise(sample, timesteps, conditioning)
            items = [
                scheduler.step(prediction[b : b + 1, : shape[0]], t, items[b][None], generator=g).prev_sample[0]
                for b, (shape, g) in enumerate(zip(shapes, generators))
            ]
        vertices = model.decode_latents(pad_items(items), conditioning)
        if conditioning.vertex_mask is not None:  # the template past each item's frames, not leftover samples
            template_rows = conditioning.template[:, None].to(vertices.dtype)
            vertices = torch.where(conditioning.vertex_mask[..., None], vertices, template_rows)
        return AnimationOutput(
            vertices=vertices, vertex_mask=conditioning.vertex_mask, audio_features=conditioning.audio_features
        )


__all__ = ["AnimationDiffusionPipeline", "scheduler_from_config"]
