"""FaceDiffuser as a transformers model: the shared animation-model tests, then FaceDiffuser's own (zero-initialised
output, q(x_t | x0) against diffusers, seeded sampling, the audio encoder run once == once per step, the published
sizes, BIWI's pairing, frozen encoder layers) and the published-checkpoint converter.

Tiny random models (10 diffusion steps); CPU, fp32.
"""

import pytest
import torch
from animation_model_tests import AnimationModelTesterMixin
from conftest import LAYER_NORM_BACKBONE, SUBJECTS, TINY_BACKBONE, V3, padded_audio, tiny_audio_config
from diffusers import DDIMScheduler, DDPMScheduler
from transformers import HubertConfig

from modeling_wav2sem import FaceDiffuserConfig, FaceDiffuserForAnimation
from modeling_wav2sem.convert_facediffuser_original_checkpoint import convert_published_state_dict, main
from modeling_wav2sem.modeling_animation_diffusion import cosine_alphas_cumprod, item_generators
from modeling_wav2sem.pipeline_animation_diffusion import AnimationDiffusionPipeline, scheduler_from_config

# Layer 0 of the 2 tiny encoder layers frozen (published: 0 and 1 of 12), so that the encoder still trains.
TINY = {"feature_dim": 8, "gru_hidden_size": 8, "num_train_timesteps": 10, "frozen_encoder_layers": [0]}


class TestFaceDiffuserAnimationModel(AnimationModelTesterMixin):
    model_class = FaceDiffuserForAnimation
    tiny_config = TINY

    @property
    def forward_kwargs(self):
        # One seed per item: each item draws the same step and noise alone and in a batch, and two models the same.
        return {"generator": 0}

    def prepare_model(self, model):
        with torch.no_grad():  # move the zero-initialised output so the prediction depends on the inputs
            model.final_layer.weight.normal_(0, 0.3)
        return model


def tiny_facediffuser(dataset="vocaset", backbone="hubert", seed=0, backbone_overrides=None, **overrides):
    return TestFaceDiffuserAnimationModel().build_model(backbone, seed, backbone_overrides,
                                                        **{"dataset": dataset, **overrides})


def audio_for_frames(frames: int, fps: float = 30.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, int(frames / fps * 16000) + 400, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------------------------
# Denoiser and training forward
# ---------------------------------------------------------------------------------------------------------------------


def test_zero_initialised_output_starts_at_the_template():
    torch.manual_seed(0)
    config = FaceDiffuserConfig(audio_config=tiny_audio_config("hubert"), vertice_dim=V3, train_subjects=SUBJECTS,
                                **TINY)
    model = FaceDiffuserForAnimation(config).eval()
    assert not model.final_layer.weight.any() and not model.final_layer.bias.any()
    template = torch.randn(V3)
    audio = audio_for_frames(20)
    with torch.no_grad():
        out = model(audio, template, 1, labels=torch.randn(1, 20, V3), generator=3)
        sampled = model.predict(audio, template, 1, generator=5)
    torch.testing.assert_close(out.vertices, template.expand(1, 20, V3), rtol=0, atol=0)
    torch.testing.assert_close(sampled.vertices, template.expand_as(sampled.vertices), rtol=0, atol=0)
    assert out.noisy_vertices.shape == (1, 20, V3) and not torch.equal(out.noisy_vertices, out.vertices)


def test_cosine_schedule_and_noising_equal_diffusers():
    for steps in (1000, 500, 10):
        reference = DDPMScheduler(num_train_timesteps=steps, beta_schedule="squaredcos_cap_v2").alphas_cumprod
        torch.testing.assert_close(cosine_alphas_cumprod(steps), reference, rtol=0, atol=0)
    model = tiny_facediffuser()
    scheduler = scheduler_from_config(model.config)
    labels, noise = torch.randn(2, 20, V3), torch.randn(2, 20, V3)
    values, mask = padded_audio([12000, 12000])
    with torch.no_grad():
        out = model(values, torch.zeros(V3), [0, 1], labels=labels, noise=noise, timesteps=torch.tensor([0, 9]))
        drawn = model(values, torch.zeros(V3), [0, 1], labels=labels, generator=4)
    torch.testing.assert_close(out.noisy_vertices, scheduler.add_noise(labels, noise, torch.tensor([0, 9])))
    assert out.timesteps.tolist() == [0, 9]
    assert all(0 <= t < 10 for t in drawn.timesteps.tolist())
    # The published loss: HuberLoss() (delta 1, mean) between the predicted and the true x0 (absolute vertices).
    torch.testing.assert_close(out.loss, torch.nn.HuberLoss()(out.vertices, labels))


def test_denoiser_matches_its_description_on_one_frame():
    # Hand-composed from the layers for one item: pairs -> cond_projection; per-frame Linear -> Conv1d over the
    # features -> ReLU -> MaxPool(2) -> ReLU; one-hot step -> Linear + Mish; LayerNorm -> GRU -> * style -> + template.
    model = tiny_facediffuser()
    audio = audio_for_frames(12)
    x_t, template = torch.randn(1, 12, V3), torch.randn(1, V3)
    with torch.no_grad():
        out = model(audio, template, 2, noisy_vertices=x_t, timesteps=7)
        features, _ = model.encode_audio(audio, num_frames=12)
        pairs = features.reshape(1, 12, 2 * features.shape[-1])
        motion = model.input_projection[0](x_t[0])[:, None]  # (T, 1, 2d)
        motion = torch.relu(torch.nn.functional.max_pool1d(torch.relu(model.input_projection[1](motion)), 2, 2))[:, 0]
        time = torch.nn.functional.mish(model.time_mlp[0].weight[:, 7] + model.time_mlp[0].bias)
        tokens = torch.cat([model.cond_projection(pairs)[0], motion, time.expand(12, -1)], -1)
        hidden, _ = model.gru(model.norm_cond(tokens)[None])
        expected = model.final_layer(hidden * model.obj_vector.weight[:, 2]) + template[:, None]
    assert motion.shape == (12, 8)
    torch.testing.assert_close(out.vertices, expected)


def test_forward_errors():
    model = tiny_facediffuser()
    audio = audio_for_frames(10)
    with pytest.raises(ValueError, match="need their timesteps"):
        model(audio, torch.zeros(V3), 0, noisy_vertices=torch.zeros(1, 10, V3), num_frames=10)
    with pytest.raises(ValueError, match="need labels .* or noisy_vertices"):
        model(audio, torch.zeros(V3), 0, timesteps=3)
    with pytest.raises(ValueError, match="is for sampling"):
        model(audio, torch.zeros(V3), 0, labels=torch.zeros(1, 10, V3), num_inference_steps=3)
    # Without labels or noisy vertices the forward samples, as predict.
    torch.testing.assert_close(model(audio, torch.zeros(V3), 0, num_inference_steps=3, generator=2).vertices,
                               model.predict(audio, torch.zeros(V3), 0, num_inference_steps=3, generator=2).vertices)
    with pytest.raises(ValueError, match="timesteps must be"):
        model(audio, torch.zeros(V3), 0, noisy_vertices=torch.zeros(1, 10, V3), timesteps=10, num_frames=10)
    with pytest.raises(ValueError, match="noise must have"):
        model(audio, torch.zeros(V3), 0, labels=torch.zeros(1, 10, V3), noise=torch.zeros(1, 9, V3))
    with pytest.raises(ValueError, match="a list needs 2"):
        item_generators([torch.Generator()], 2)


def test_frozen_encoder_parts_as_published():
    model = tiny_facediffuser(backbone="fused", frozen_encoder_layers=[0, 1]).train()
    backbone = model.speech_backbone
    assert not any(p.requires_grad for p in backbone.feature_projection.parameters())
    assert not any(p.requires_grad for p in backbone.encoder.layers.parameters())  # layers 0 and 1 of 2
    assert all(p.requires_grad for p in backbone.encoder.pos_conv_embed.parameters())
    assert all(p.requires_grad for p in backbone.encoder.layer_norm.parameters())
    model = tiny_facediffuser(frozen_encoder_layers=[1])
    assert all(p.requires_grad for p in model.speech_backbone.encoder.layers[0].parameters())
    assert not any(p.requires_grad for p in model.speech_backbone.encoder.layers[1].parameters())


# ---------------------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------------------


def test_seeded_sampling_is_reproducible_and_another_seed_differs():
    model = tiny_facediffuser()
    audio, template = audio_for_frames(15), torch.randn(V3)
    first = model.predict(audio, template, 0, generator=11).vertices
    again = model.predict(audio, template, 0, generator=torch.Generator().manual_seed(11)).vertices
    other = model.predict(audio, template, 0, generator=12).vertices
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-3
    torch.testing.assert_close(model.predict(audio, template, 0).vertices,
                               model.predict(audio, template, 0, generator=0).vertices, rtol=0, atol=0)
    torch.manual_seed(3)
    unseeded = model.predict(audio, template, 0, generator=None).vertices
    torch.manual_seed(3)
    torch.testing.assert_close(model.predict(audio, template, 0, generator=None).vertices, unseeded)


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim"])
def test_encoder_once_equals_encoder_every_step(scheduler):
    model = tiny_facediffuser(backbone="fused", diffusion_scheduler=scheduler)
    calls = []
    model.speech_backbone.feature_extractor.register_forward_hook(lambda *args: calls.append(1))
    values, mask = padded_audio([14000, 9000])
    once = model.predict(values, torch.zeros(V3), [0, 2], attention_mask=mask, generator=1)
    assert len(calls) == 1
    every = model.predict(values, torch.zeros(V3), [0, 2], attention_mask=mask, generator=1, encode_every_step=True)
    assert len(calls) == 1 + 10  # one per denoising step
    assert torch.equal(once.vertices, every.vertices)
    assert torch.equal(once.vertex_mask, every.vertex_mask)


def test_scheduler_settings_and_step_counts():
    model = tiny_facediffuser()
    ddpm = scheduler_from_config(model.config)
    assert isinstance(ddpm, DDPMScheduler)
    assert ddpm.config.beta_schedule == "squaredcos_cap_v2" and ddpm.config.prediction_type == "sample"
    assert ddpm.config.variance_type == "fixed_small" and not ddpm.config.clip_sample
    ddpm.set_timesteps(10)
    assert ddpm.timesteps.tolist() == list(range(9, -1, -1))  # the published full chain, 9 ... 0
    ddim = scheduler_from_config(tiny_facediffuser(diffusion_scheduler="ddim").config)
    assert isinstance(ddim, DDIMScheduler)
    ddim = DDIMScheduler.from_config(ddim.config, num_train_timesteps=1000)
    ddim.set_timesteps(100)
    assert ddim.timesteps[:2].tolist() == [999, 989] and ddim.timesteps[-1] == 9  # LG-LDM's linspace(-1, 999, 101)
    calls = []
    denoise = model.denoise
    model.denoise = lambda *args, **kwargs: calls.append(1) or denoise(*args, **kwargs)
    model.predict(audio_for_frames(8), torch.zeros(V3), 0, num_inference_steps=4)
    assert len(calls) == 4
    with pytest.raises(ValueError, match="num_inference_steps must be in"):
        model.predict(audio_for_frames(8), torch.zeros(V3), 0, num_inference_steps=11)
    with pytest.raises(ValueError, match="training steps"):
        AnimationDiffusionPipeline(model, DDPMScheduler(num_train_timesteps=20))


def test_biwi_pairs_two_frames_and_cuts_instead_of_stretching():
    model = tiny_facediffuser("biwi", backbone_overrides=LAYER_NORM_BACKBONE)
    assert model.config.frame_rate == 25 and model.config.audio_resampling == "truncate"
    audio = torch.randn(1, 320 * 40 + 80)  # 40 conv frames: 20 vertex frames at 25 fps
    with torch.no_grad():
        out = model(audio, torch.zeros(V3), 0, labels=torch.randn(1, 21, V3), generator=0)
        encoder_output = model.audio_encoder(audio).last_hidden_state
    assert out.vertices.shape == (1, 20, V3)  # the labels are cut to N // 2 frames, not the audio stretched
    torch.testing.assert_close(out.audio_features, encoder_output[:, :40])


# ---------------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------------


def test_presets_as_published():
    backbone = HubertConfig(**{**TINY_BACKBONE, "hidden_size": 768, "num_attention_heads": 12})
    sizes = {"vocaset": (15069, 256, 1000, 30, 8), "biwi": (70110, 512, 500, 25, 6)}
    for dataset, (vertice_dim, width, steps, fps, speakers) in sizes.items():
        config = FaceDiffuserConfig.from_preset(dataset, audio_config=backbone)
        assert (config.vertice_dim, config.feature_dim, config.gru_hidden_size, config.num_train_timesteps,
                config.frame_rate, config.num_subjects) == (vertice_dim, width, width, steps, fps, speakers)
        assert config.default_inference_steps == steps and config.gru_num_layers == 2 and config.gru_dropout == 0.3
        assert config.frozen_encoder_layers == [0, 1] and config.freeze_feature_projection
        with torch.device("meta"):
            model = FaceDiffuserForAnimation(config)
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("audio_encoder.")}
        assert shapes["cond_projection.weight"] == (width, 1536)
        assert shapes["input_projection.0.weight"] == (2 * width, vertice_dim)
        assert shapes["input_projection.1.weight"] == (1, 1, 9)
        assert shapes["time_mlp.0.weight"] == (width, steps)
        assert shapes["norm_cond.weight"] == (3 * width,)
        assert shapes["gru.weight_ih_l0"] == (3 * width, 3 * width) and shapes["gru.weight_hh_l1"] == (3 * width, width)
        assert shapes["obj_vector.weight"] == (width, speakers) and shapes["final_layer.weight"] == (vertice_dim, width)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"gru_hidden_size": 16}, "must equal feature_dim"), ({"conv_kernel_size": 4}, "odd"),
     ({"num_inference_steps": 11}, "num_inference_steps"), ({"diffusion_scheduler": "pndm"}, "diffusion_scheduler"),
     ({"prediction_type": "epsilon"}, "predicts x0"), ({"frozen_encoder_layers": [5]}, "not layers"),
     ({"beta_schedule": "linear"}, "cosine")],
)
def test_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        FaceDiffuserConfig(audio_config=tiny_audio_config("hubert"), vertice_dim=V3, train_subjects=SUBJECTS,
                           **{**TINY, **overrides})


# ---------------------------------------------------------------------------------------------------------------------
# Converter (the published key layout: ours with the old weight-norm names of the vendored HuBERT)
# ---------------------------------------------------------------------------------------------------------------------

OLD_NAMES = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}


def published_state_dict(model) -> dict:
    state = {}
    for key, value in model.state_dict().items():
        for new, old in OLD_NAMES.items():
            key = key.replace(new, old)
        state[key] = value.clone()
    return state


@pytest.mark.parametrize("dataset", ["vocaset", "biwi"])
def test_converter_round_trip(dataset):
    model = tiny_facediffuser(dataset, train_subjects=["a", "b", "c"])
    state = published_state_dict(model)
    assert "audio_encoder.encoder.pos_conv_embed.conv.weight_g" in state and "time_mlp.0.weight" in state
    config, converted = convert_published_state_dict(state, model.config.audio_config, dataset, ["a", "b", "c"])
    assert (config.feature_dim, config.num_train_timesteps, config.vertice_dim) == (8, 10, V3)
    assert config.frame_rate == model.config.frame_rate and config.audio_resampling == model.config.audio_resampling
    loaded = FaceDiffuserForAnimation(config)
    loaded.load_state_dict(converted, strict=True)
    loaded.eval()
    audio = audio_for_frames(12, config.frame_rate)
    torch.testing.assert_close(loaded.predict(audio, torch.zeros(V3), 1).vertices,
                               model.predict(audio, torch.zeros(V3), 1).vertices, rtol=0, atol=0)


def test_converter_names_bad_keys():
    model = tiny_facediffuser()
    audio_config = model.config.audio_config
    state = published_state_dict(model)
    state.pop("gru.bias_hh_l1")
    state["extra.weight"] = torch.zeros(3)
    state["norm_cond.bias"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"missing: \['gru.bias_hh_l1'\].*unexpected: \['extra.weight'\].*norm_cond.bias"):
        convert_published_state_dict(state, audio_config, "vocaset", SUBJECTS)
    with pytest.raises(ValueError, match="2 train_subjects"):
        convert_published_state_dict(published_state_dict(model), audio_config, "vocaset", ["a", "b"])
    with pytest.raises(ValueError, match="lacks 'cond_projection.weight'"):
        convert_published_state_dict({"x": torch.zeros(1)}, audio_config, "vocaset", SUBJECTS)
    with pytest.raises(ValueError, match="hidden_size"):
        convert_published_state_dict(published_state_dict(model), HubertConfig(**{**TINY_BACKBONE, "hidden_size": 16,
                                                                                  "num_attention_heads": 2}),
                                     "vocaset", SUBJECTS)


def test_converter_command_line(tmp_path):
    model = tiny_facediffuser(train_subjects=["a", "b", "c"])
    model.config.audio_config.save_pretrained(tmp_path / "encoder")
    torch.save(published_state_dict(model), tmp_path / "pretrained_vocaset.pth")
    main(["--checkpoint", str(tmp_path / "pretrained_vocaset.pth"), "--dataset", "vocaset", "--output_dir",
          str(tmp_path / "out"), "--audio_encoder", str(tmp_path / "encoder"), "--train_subjects", "a", "b", "c"])
    from transformers import AutoModel

    loaded = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert isinstance(loaded, FaceDiffuserForAnimation) and (tmp_path / "out" / "preprocessor_config.json").is_file()
    audio = audio_for_frames(10)
    torch.testing.assert_close(loaded.predict(audio, torch.zeros(V3), "b").vertices,
                               model.predict(audio, torch.zeros(V3), "b").vertices, rtol=0, atol=0)
