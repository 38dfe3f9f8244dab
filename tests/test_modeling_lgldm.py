"""LG-LDM as a transformers model: the shared animation-model tests, then the zero-initialised denoiser output, the
frozen stage 1 (unchanged by training), the training forward's q(x_t | x_0) against diffusers' scheduler, the DDIM
sampler of the presets, seeded and reproducible sampling, the audio encoded once == at every step, the BIWI pairing,
configs and the published-checkpoint converter.

Tiny random models; CPU, fp32.
"""

import pytest
import torch
from animation_model_tests import AnimationModelTesterMixin
from conftest import SUBJECTS, V3, frames_mask, padded_audio, tiny_audio_config
from diffusers import DDPMScheduler
from test_modeling_codetalker import TINY_VQ, TINY_VQ_BIWI, spread_codebook
from transformers import AutoModel, HubertConfig, Wav2Vec2Config

from modeling_wav2sem import CodeTalkerVQVAE, LGLDMConfig, LGLDMForAnimation
from modeling_wav2sem.convert_lgldm_original_checkpoint import (
    convert_lgldm_state_dicts,
    main as convert_main,
)
from modeling_wav2sem.modeling_animation_diffusion import cosine_alphas_cumprod
from modeling_wav2sem.pipeline_animation_diffusion import scheduler_from_config

TINY_LGLDM = {"feature_dim": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "vqvae_config": TINY_VQ,
              "num_inference_steps": 4}


class TestLGLDMAnimationModel(AnimationModelTesterMixin):
    model_class = LGLDMForAnimation
    tiny_config = TINY_LGLDM
    forward_kwargs = {"generator": 0}  # each item's step and noise from its own generator: batch == alone

    def prepare_model(self, model):
        with torch.no_grad():  # move the zero-initialised latent_decoder so the prediction depends on the inputs
            model.latent_decoder.weight.normal_(0, 0.5)
        spread_codebook(model.autoencoder)
        return model


def tiny_lgldm(dataset="vocaset", backbone="wav2vec2", seed=0, prepare=True, **overrides):
    fields = {**TINY_LGLDM, "vqvae_config": TINY_VQ_BIWI if dataset == "biwi" else TINY_VQ, "dataset": dataset,
              **overrides}
    tester = TestLGLDMAnimationModel()
    if not prepare:
        tester.prepare_model = lambda model: model
    return tester.build_model(backbone, seed, None, **fields)


def test_untrained_denoiser_predicts_zero_and_samples_ignore_the_audio():
    model = tiny_lgldm(prepare=False)
    assert model.latent_decoder.weight.abs().sum() == 0 and model.latent_decoder.bias.abs().sum() == 0
    audio, template = padded_audio([9000, 9000], seed=3)[0], torch.randn(2, V3)
    with torch.no_grad():
        conditioning = model.encode_conditioning(audio, template, [0, 1])
        sample = torch.randn(2, max(conditioning.frames), model.config.vqvae_config.latent_dim)
        assert torch.equal(model.denoise(sample, torch.tensor([3, 700]), conditioning), torch.zeros_like(sample))
        a = model.predict(audio[:1], template[0], 0).vertices
        b = model.predict(torch.randn(1, 9000), template[0], 2, generator=5).vertices
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # x0 = 0 every step: the decoding of latent zero


def test_frozen_stage1_stays_frozen_unchanged_and_in_eval_mode_through_training():
    model = tiny_lgldm().train()
    assert not model.autoencoder.training and model.transformer_decoder.training
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    before = {k: v.clone() for k, v in model.autoencoder.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    values, mask = padded_audio([9000, 7000])
    frames = [TestLGLDMAnimationModel.frames_for(model, n) for n in (9000, 7000)]
    labels = torch.randn(2, frames[0], V3)
    for step in range(3):
        out = model(values, torch.zeros(2, V3), [0, 1], labels=labels, attention_mask=mask,
                    vertex_mask=frames_mask(frames), generator=step)
        optimizer.zero_grad()
        out.loss.backward()
        assert all(p.grad is None for p in model.autoencoder.parameters())
        optimizer.step()
    after = model.autoencoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.autoencoder.training
    decoder_weight = model.latent_decoder.weight
    assert decoder_weight.grad is not None and decoder_weight.grad.abs().sum() > 0


def test_training_forward_noises_with_the_cosine_schedule_as_diffusers():
    model = tiny_lgldm()
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(model.alphas_cumprod, scheduler.alphas_cumprod, rtol=0, atol=0)
    audio, template = torch.randn(2, 12000), torch.randn(2, V3)
    frames = TestLGLDMAnimationModel.frames_for(model, 12000)
    labels = template[:, None] + 0.1 * torch.randn(2, frames, V3)
    timesteps = torch.tensor([17, 930])
    noise = torch.randn(2, frames, model.config.vqvae_config.latent_dim)
    with torch.no_grad():
        out = model(audio, template, [1, 2], labels=labels, timesteps=timesteps, noise=noise)
        conditioning = model.encode_conditioning(audio, template, [1, 2])
        clean = model.autoencoder.encoder(labels - template[:, None], None)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        prediction = model.denoise(noisy, timesteps, conditioning)
        vertices = model.decode_latents(prediction, conditioning)
    assert out.timesteps.tolist() == [17, 930]
    torch.testing.assert_close(out.latents, prediction)
    torch.testing.assert_close(out.vertices, vertices)
    torch.testing.assert_close(out.latent_loss, ((prediction - clean) ** 2).mean())
    torch.testing.assert_close(out.vertex_loss, ((vertices - labels) ** 2).mean())
    torch.testing.assert_close(out.loss, out.latent_loss + out.vertex_loss)
    # The default draw: uniform steps from the seed, another seed another draw.
    with torch.no_grad():
        first = model(audio, template, [1, 2], labels=labels, generator=1)
        again = model(audio, template, [1, 2], labels=labels, generator=1)
        other = model(audio, template, [1, 2], labels=labels, generator=2)
    assert torch.equal(first.loss, again.loss) and not torch.equal(first.loss, other.loss)


@pytest.mark.parametrize(("dataset", "steps"), [("vocaset", 100), ("biwi", 50)])
def test_presets_sample_with_the_published_ddim_steps(dataset, steps):
    config = LGLDMConfig.from_preset(dataset, audio_config=Wav2Vec2Config())
    assert config.num_inference_steps == steps and config.diffusion_scheduler == "ddim"
    scheduler = scheduler_from_config(config)
    assert type(scheduler).__name__ == "DDIMScheduler" and scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert scheduler.config.prediction_type == "sample"
    scheduler.set_timesteps(steps)
    # The published ddim_sample: times = linspace(-1, 999, steps + 1), pairs (999, 989), ... for 100 steps.
    published = [int(t) for t in torch.linspace(-1, 999, steps + 1).tolist()][1:][::-1]
    assert scheduler.timesteps.tolist() == published


def test_seeded_sampling_is_reproducible():
    model = tiny_lgldm()
    values, mask = padded_audio([12000, 8000])
    template = torch.randn(2, V3)
    with torch.no_grad():
        a = model.predict(values, template, [0, 1], attention_mask=mask, generator=7).vertices
        b = model.predict(values, template, [0, 1], attention_mask=mask, generator=7).vertices
        c = model.predict(values, template, [0, 1], attention_mask=mask, generator=8).vertices
        d = model.predict(values, template, [0, 1], attention_mask=mask,
                          generator=[torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)]).vertices
        fewer = model.predict(values, template, [0, 1], attention_mask=mask, generator=7, num_inference_steps=2)
    assert torch.equal(a, b) and torch.equal(a, d)
    assert not torch.equal(a, c)
    assert fewer.vertices.shape == a.shape and not torch.equal(fewer.vertices, a)


@pytest.mark.parametrize("backbone", ["wav2vec2", "fused"])
def test_audio_encoded_once_gives_the_vertices_of_encoding_every_step(backbone):
    model = tiny_lgldm(backbone=backbone)
    values, mask = padded_audio([12000, 9000])
    template = torch.randn(2, V3)
    calls = []
    hook = model.speech_backbone.feature_extractor.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        once = model.predict(values, template, [2, 0], attention_mask=mask, generator=1).vertices
        assert len(calls) == 1
        every = model.predict(values, template, [2, 0], attention_mask=mask, generator=1, encode_every_step=True)
    hook.remove()
    assert len(calls) == 1 + model.config.num_inference_steps
    torch.testing.assert_close(every.vertices, once, rtol=0, atol=0)


def test_biwi_pairs_two_audio_frames_per_vertex_frame():
    model = tiny_lgldm("biwi")
    config = model.config
    assert config.audio_frames_per_vertex_frame == 2 and config.audio_resampling == "truncate"
    assert model.audio_extract[0].in_features == 2 * config.audio_hidden_size
    assert config.style_activation and not config.latent_activation and config.period == 25
    audio = torch.randn(1, 16000)
    frames = TestLGLDMAnimationModel.frames_for(model, 16000)
    with torch.no_grad():
        conditioning = model.encode_conditioning(audio, torch.zeros(V3), 0)
        hidden = model.audio_encoder(audio).last_hidden_state  # the encoder's own forward at 50 Hz
    assert conditioning.frames == [frames] and conditioning.memory.shape == (1, frames, config.feature_dim)
    torch.testing.assert_close(conditioning.audio_features, hidden[:, : 2 * frames], rtol=0, atol=1e-5)
    paired = hidden[:, : 2 * frames].reshape(1, frames, -1)  # frame t: audio frames 2t and 2t + 1, concatenated
    torch.testing.assert_close(conditioning.memory, model.audio_extract(paired), rtol=0, atol=1e-5)


def test_presets_and_config_errors():
    vocaset = LGLDMConfig.from_preset("vocaset", audio_config=HubertConfig())
    assert (vocaset.feature_dim, vocaset.num_hidden_layers, vocaset.num_attention_heads, vocaset.intermediate_size,
            vocaset.period) == (1024, 8, 8, 2048, 30)
    assert (vocaset.vqvae_config.tokens_per_frame, vocaset.vqvae_config.code_dim) == (16, 64)
    assert vocaset.audio_frames_per_vertex_frame == 1 and vocaset.latent_activation and not vocaset.style_activation
    biwi = LGLDMConfig.from_preset("biwi", audio_config=Wav2Vec2Config())
    assert (biwi.num_attention_heads, biwi.period, biwi.num_subjects, biwi.vqvae_config.latent_dim) == (4, 25, 6, 1024)
    for fields, message in [
        ({"prediction_type": "epsilon"}, "predicts x0"),
        ({"beta_schedule": "linear"}, "cosine schedule"),
        ({"diffusion_scheduler": "euler"}, "diffusion_scheduler"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"feature_dim": 18, "num_attention_heads": 4}, "divisible"),
        ({"audio_resampling": "nearest"}, "audio_resampling"),
        ({"vqvae_config": {**TINY_VQ, "vertice_dim": V3 + 3}}, "reconstructs"),
    ]:
        with pytest.raises(ValueError, match=message):
            LGLDMConfig(audio_config=tiny_audio_config(), vertice_dim=V3, train_subjects=SUBJECTS,
                        **{**TINY_LGLDM, **fields})
    model = tiny_lgldm()
    with pytest.raises(ValueError, match="timesteps must be in"):
        model(torch.randn(1, 8000), torch.zeros(V3), 0, labels=torch.zeros(1, 14, V3), timesteps=1000)
    with pytest.raises(ValueError, match="noise must have"):
        model(torch.randn(1, 8000), torch.zeros(V3), 0, labels=torch.zeros(1, 14, V3), noise=torch.zeros(1, 3, 3))


def test_from_audio_encoder_with_a_trained_vqvae(encoder_dirs, tmp_path):
    torch.manual_seed(0)
    vqvae = CodeTalkerVQVAE(LGLDMConfig(audio_config=tiny_audio_config(), vertice_dim=V3, train_subjects=SUBJECTS,
                                        **TINY_LGLDM).vqvae_config)
    spread_codebook(vqvae)
    vqvae.save_pretrained(tmp_path / "vqvae")
    model = LGLDMForAnimation.from_audio_encoder(encoder_dirs["fused"], vertice_dim=V3, train_subjects=SUBJECTS,
                                                 vqvae=str(tmp_path / "vqvae"),
                                                 **{k: v for k, v in TINY_LGLDM.items() if k != "vqvae_config"})
    assert all(torch.equal(v, vqvae.state_dict()[k]) for k, v in model.autoencoder.state_dict().items())
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    model.save_pretrained(tmp_path / "model")
    loaded = AutoModel.from_pretrained(tmp_path / "model")
    assert isinstance(loaded, LGLDMForAnimation) and not any(p.requires_grad for p in loaded.autoencoder.parameters())


# ---------------------------------------------------------------------------------------------------------------------
# Converter
# ---------------------------------------------------------------------------------------------------------------------

# Checked against the published code (github.com/wangxuanx/Face-Diffusion-Model at d8d8376, `models/fdm_vocaset.py`,
# run locally in /tmp, not committed, its HuBERT stubbed to return the same audio features): with the same random
# weights (mapped to its names as `published_state_dicts` does), the published VOCASET denoiser and
# `LGLDMForAnimation.denoise` give bitwise the same x0 prediction (max abs difference 0.0 on outputs of about 2.5) at
# the published size (d 1024, 8 layers, 8 heads, 16 x 64 latents per frame), 40 frames, steps 0, 517 and 999, eval mode.


def published_heads_lgldm(dataset="vocaset"):
    """A tiny model with the published heads (not readable from shapes: 8 in the VQ-VAE; 8 VOCASET, 4 BIWI)."""
    vq = {**(TINY_VQ_BIWI if dataset == "biwi" else TINY_VQ), "num_attention_heads": 8}
    return tiny_lgldm(dataset, num_attention_heads=8 if dataset == "vocaset" else 4, vqvae_config=vq)


def published_state_dicts(model: LGLDMForAnimation):
    """The model's weights under the published names: (stage 2 `GaussianDiffusion`, stage 1 `VQAutoEncoder`)."""
    from test_modeling_codetalker import published_stage1

    config = model.config
    stage2 = {}
    for key, value in model.state_dict().items():
        if key.startswith("autoencoder."):
            continue
        for name, sequential in (("time_embedd", True), ("style_embedd", config.style_activation),
                                 ("latent_encoder", config.latent_activation)):
            if sequential and key.startswith(name + "."):
                key = f"{name}.0.{key[len(name) + 1:]}"
        stage2["denoise_fn." + key] = value.clone()
    table = torch.zeros(1, 600, config.feature_dim)
    from modeling_wav2sem.modeling_faceformer import periodic_positional_encoding

    table[0] = periodic_positional_encoding(config.period, config.feature_dim)[torch.arange(600) % config.period]
    stage2["denoise_fn.PE.pe"] = table
    alphas = cosine_alphas_cumprod(config.num_train_timesteps)
    stage2["alphas_cumprod"] = alphas
    stage2["betas"] = 1 - alphas / torch.cat([torch.ones(1), alphas[:-1]])
    return stage2, published_stage1(model.autoencoder)


@pytest.mark.parametrize("dataset", ["vocaset", "biwi"])
def test_converter_round_trip(dataset):
    model = published_heads_lgldm(dataset)
    stage2, stage1 = published_state_dicts(model)
    config, state_dict = convert_lgldm_state_dicts(stage2, stage1, model.config.audio_config, dataset,
                                                   train_subjects=SUBJECTS)
    assert (config.style_activation, config.latent_activation) == (dataset == "biwi", dataset == "vocaset")
    converted = LGLDMForAnimation(config).eval()
    converted.load_state_dict(state_dict, strict=True)
    values, mask = padded_audio([10000, 7000])
    template = torch.randn(2, V3)
    with torch.no_grad():
        expected = model.predict(values, template, [1, 2], attention_mask=mask).vertices
        # The preset's DDIM steps (100 / 50) against the tiny model's 4: the same steps for both.
        assert converted.config.num_inference_steps == {"vocaset": 100, "biwi": 50}[dataset]
        steps = model.config.num_inference_steps
        converted_vertices = converted.predict(values, template, [1, 2], attention_mask=mask, num_inference_steps=steps)
        torch.testing.assert_close(converted_vertices.vertices, expected)


def test_converter_refuses_what_does_not_fit():
    model = published_heads_lgldm("biwi")
    stage2, stage1 = published_state_dicts(model)
    audio_config = model.config.audio_config
    encoder_variant = {k.replace("transformer_decoder", "transformer_encoder"): v for k, v in stage2.items()}
    with pytest.raises(ValueError, match="struct='Enc'"):
        convert_lgldm_state_dicts(encoder_variant, stage1, audio_config, "biwi", SUBJECTS)
    with pytest.raises(ValueError, match="unexpected: .*denoise_fn.extra"):
        convert_lgldm_state_dicts({**stage2, "denoise_fn.extra.weight": torch.zeros(2)}, stage1, audio_config, "biwi",
                                  SUBJECTS)
    missing = {k: v for k, v in stage2.items() if k != "denoise_fn.latent_decoder.bias"}
    with pytest.raises(ValueError, match="missing: .*latent_decoder.bias"):
        convert_lgldm_state_dicts(missing, stage1, audio_config, "biwi", SUBJECTS)
    aperiodic = {**stage2, "denoise_fn.PE.pe": torch.randn_like(stage2["denoise_fn.PE.pe"])}
    with pytest.raises(ValueError, match="periodic positional encoding"):
        convert_lgldm_state_dicts(aperiodic, stage1, audio_config, "biwi", SUBJECTS)
    linear = {**stage2, "alphas_cumprod": torch.linspace(0.999, 0.01, 1000)}
    with pytest.raises(ValueError, match="cosine schedule"):
        convert_lgldm_state_dicts(linear, stage1, audio_config, "biwi", SUBJECTS)
    with pytest.raises(ValueError, match="outside denoise_fn"):
        convert_lgldm_state_dicts({**stage2, "stray": torch.zeros(1)}, stage1, audio_config, "biwi", SUBJECTS)


def test_converter_command_line(tmp_path):
    model = published_heads_lgldm()
    stage2, stage1 = published_state_dicts(model)
    torch.save({"epoch": 100, "model": stage2, "opt": {}}, tmp_path / "vocaset_stage2.mpt")
    torch.save({"state_dict": stage1}, tmp_path / "vocaset_stage1.pth.tar")  # the CodeTalker-format stage 1
    model.config.audio_config.save_pretrained(tmp_path / "encoder")
    convert_main(["--stage1", str(tmp_path / "vocaset_stage1.pth.tar"), "--stage2", str(tmp_path / "vocaset_stage2.mpt"),
                  "--dataset", "vocaset", "--output_dir", str(tmp_path / "out"), "--audio_encoder",
                  str(tmp_path / "encoder"), "--train_subjects", *SUBJECTS])
    loaded = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert isinstance(loaded, LGLDMForAnimation)
    audio, template = torch.randn(1, 9000), torch.randn(V3)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(audio, template, 1, num_inference_steps=4).vertices,
                                   model.predict(audio, template, 1).vertices)
