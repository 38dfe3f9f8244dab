"""CodeTalker as transformers models: the shared animation-model tests on stage 2, then the VQ-VAE (quantiser
straight-through gradient, codebook loss, encode/decode shapes, padded batches), cached == naive inference (also past
600 frames), the fused encoder's F_d entry, configs and the published-checkpoint converter.

Tiny random models; CPU, fp32.
"""

import re

import pytest
import torch
from animation_model_tests import AnimationModelTesterMixin
from conftest import LAYER_NORM_BACKBONE, SUBJECTS, TINY_BACKBONE, V3, frames_mask, padded_audio, tiny_audio_config
from transformers import AutoModel, Wav2Vec2Config

from modeling_wav2sem import (
    CodeTalkerConfig,
    CodeTalkerForAnimation,
    CodeTalkerVQVAE,
    CodeTalkerVQVAEConfig,
    FaceFormerConfig,
)
from modeling_wav2sem.convert_codetalker_original_checkpoint import (
    convert_stage1_state_dict,
    convert_stage2_state_dict,
    rename_stage1_key,
)
from modeling_wav2sem.modeling_codetalker import masked_instance_norm, published_positional_row

TINY_VQ = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24,
           "tokens_per_frame": 4, "code_dim": 4, "num_embeddings": 32}
TINY_VQ_BIWI = {**TINY_VQ, "tokens_per_frame": 2, "code_dim": 6}  # 12 != 16: the BIWI latent projection


def spread_codebook(vqvae: CodeTalkerVQVAE, seed: int = 0):
    """Codes at the scale of the latents, so that many are used (the published U(-1/K, 1/K) init maps all to few)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight = vqvae.quantize.embedding.weight
        weight.copy_(torch.randn(weight.shape, generator=gen))


class TestCodeTalkerAnimationModel(AnimationModelTesterMixin):
    model_class = CodeTalkerForAnimation
    tiny_config = {"feature_dim": 16, "num_hidden_layers": 2, "vqvae_config": TINY_VQ}

    def prepare_model(self, model):
        with torch.no_grad():  # move the zero-initialised feat_map so the prediction depends on the inputs
            model.feat_map.weight.normal_(0, 0.5)
        spread_codebook(model.autoencoder)
        return model


def tiny_codetalker(dataset="vocaset", backbone="wav2vec2", seed=0, backbone_overrides=None, **overrides):
    vq = TINY_VQ_BIWI if dataset == "biwi" else TINY_VQ
    fields = {**TestCodeTalkerAnimationModel.tiny_config, "vqvae_config": vq, "dataset": dataset, **overrides}
    return TestCodeTalkerAnimationModel().build_model(backbone, seed, backbone_overrides, **fields)


def tiny_vqvae(dataset="vocaset", seed=0, **overrides):
    torch.manual_seed(seed)
    vq = TINY_VQ_BIWI if dataset == "biwi" else TINY_VQ
    model = CodeTalkerVQVAE(CodeTalkerVQVAEConfig.from_preset(dataset, vertice_dim=V3, **{**vq, **overrides}))
    spread_codebook(model, seed)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------------
# Stage 1: the VQ-VAE
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["vocaset", "biwi"])
def test_vqvae_encode_decode_shapes(dataset):
    model = tiny_vqvae(dataset)
    config = model.config
    assert (model.encoder.encoder_linear_embedding_post is not None) == (dataset == "biwi")
    assert (model.decoder.vertice_map_reverse.bias is not None) == (dataset == "vocaset")
    vertices, template = torch.randn(2, 7, V3), torch.randn(2, V3)
    with torch.no_grad():
        latents = model.encode(vertices - template[:, None])
        assert latents.shape == (2, 7 * config.tokens_per_frame, config.code_dim)
        quantized, loss, indices, perplexity = model.quantize_latents(latents)
        assert quantized.shape == latents.shape and indices.shape == (2, 7 * config.tokens_per_frame)
        torch.testing.assert_close(quantized, model.quantize.embedding(indices))  # eval: the codes themselves
        assert model.decode(quantized).shape == (2, 7, V3)
        torch.testing.assert_close(model.decode_indices(indices), model.decode(quantized))
        out = model(vertices, template)
    assert out.vertices.shape == (2, 7, V3) and out.loss.shape == () and 1 <= float(out.perplexity) <= 32
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.codebook_loss)
    torch.testing.assert_close(out.reconstruction_loss, (out.vertices - vertices).abs().mean())


def test_quantizer_straight_through_gradient_and_codebook_loss():
    model = tiny_vqvae().train()
    latents = torch.randn(2, 12, model.config.code_dim, requires_grad=True)
    quantized, loss, indices, _ = model.quantize(latents)
    codes = model.quantize.embedding.weight[indices]
    torch.testing.assert_close(quantized, codes)  # the values are the nearest codes ...
    distances = torch.cdist(latents.detach().reshape(-1, latents.shape[-1]), model.quantize.embedding.weight)
    assert torch.equal(indices.reshape(-1), distances.argmin(-1))
    weight = torch.randn_like(quantized)
    (quantized * weight).sum().backward()
    torch.testing.assert_close(latents.grad, weight)  # ... and their gradient goes straight through to the latents
    assert model.quantize.embedding.weight.grad is None
    # beta * |sg(z_q) - z|^2 + |z_q - sg(z)|^2: both terms have the value mean((z_q - z)^2); the codebook moves only
    # with the second, the latents only with the first (times beta).
    latents.grad = None
    quantized, loss, _, _ = model.quantize(latents)
    squared = ((codes.detach() - latents.detach()) ** 2).mean()
    torch.testing.assert_close(loss, (1 + 0.25) * squared)
    loss.backward()
    n = latents.numel()
    torch.testing.assert_close(latents.grad, 0.25 * 2 * (latents - codes).detach() / n)
    grad = model.quantize.embedding.weight.grad
    expected = torch.zeros_like(grad).index_add_(0, indices.reshape(-1), (2 * (codes - latents) / n).detach().reshape(-1, 4))
    torch.testing.assert_close(grad, expected)


def test_vqvae_trains_encoder_decoder_and_codebook():
    model = tiny_vqvae().train()
    out = model(torch.randn(2, 6, V3), torch.randn(V3))
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert grads["encoder.vertice_mapping.weight"].abs().sum() > 0 and grads["quantize.embedding.weight"].abs().sum() > 0


def test_vqvae_padded_batch_gives_each_item_its_own_result():
    model = tiny_vqvae("biwi")
    frames = [9, 5, 1]
    vertices, template = torch.randn(3, 9, V3), torch.randn(3, V3)
    with torch.no_grad():
        batched = model(vertices, template, vertex_mask=frames_mask(frames))
        for i, t in enumerate(frames):
            alone = model(vertices[i : i + 1, :t], template[i : i + 1])
            torch.testing.assert_close(batched.vertices[i, :t], alone.vertices[0], rtol=0, atol=1e-5)
            n = t * model.config.tokens_per_frame
            assert torch.equal(batched.code_indices[i, :n], alone.code_indices[0])
    with pytest.raises(ValueError, match="right-padded"):
        model(vertices, template, vertex_mask=torch.tensor([[1, 0, 1] + [0] * 6] * 3))


def test_masked_instance_norm_and_positional_row():
    x = torch.randn(2, 7, 5)
    torch.testing.assert_close(masked_instance_norm(x, None, 1e-5),
                               torch.nn.functional.instance_norm(x.transpose(1, 2), eps=1e-5).transpose(1, 2))
    masked = masked_instance_norm(x, frames_mask([7, 4]), 1e-5)
    torch.testing.assert_close(masked[1, :4], masked_instance_norm(x[1:, :4], None, 1e-5)[0])
    assert masked_instance_norm(x[:, :1], None, 1e-5).abs().max() == 0  # one frame normalises to zero
    # The published VQ-VAE adds row 0 of its sinusoidal table, (sin 0, cos 0, ...), to every frame.
    assert published_positional_row(6).tolist() == [0, 1, 0, 1, 0, 1]


def test_vqvae_auto_round_trip(tmp_path):
    model = tiny_vqvae("biwi")
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, CodeTalkerVQVAE) and loaded.config.latent_projection
    vertices, template = torch.randn(1, 5, V3), torch.randn(1, V3)
    torch.testing.assert_close(loaded(vertices, template).vertices, model(vertices, template).vertices)


# ---------------------------------------------------------------------------------------------------------------------
# Stage 2: the frozen stage 1, inference, F_d
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["vocaset", "biwi"])
def test_cached_inference_equals_the_naive_loop(dataset):
    model = tiny_codetalker(dataset)
    values, mask = padded_audio([16000, 11000])
    template = torch.randn(2, V3)
    with torch.no_grad():
        cached = model.predict(values, template, [0, 2], attention_mask=mask)
        naive = model.predict(values, template, [0, 2], attention_mask=mask, use_cache=False)
    torch.testing.assert_close(cached.vertices, naive.vertices, rtol=0, atol=1e-5)
    assert torch.equal(cached.code_indices, naive.code_indices)
    assert len(set(cached.code_indices.flatten().tolist())) > 3  # the feedback changes the codes frame to frame


def test_no_600_frame_ceiling():
    model = tiny_codetalker("vocaset")
    audio = torch.randn(1, 16000 * 21)  # 21 s: 630 frames at 30 fps
    with torch.no_grad():
        cached = model.predict(audio, torch.zeros(V3), 0, num_frames=610)
        naive = model.predict(audio, torch.zeros(V3), 0, num_frames=610, use_cache=False)
    assert cached.vertices.shape == (1, 610, V3)
    torch.testing.assert_close(cached.vertices, naive.vertices, rtol=0, atol=1e-5)


def test_teacher_forced_loss_terms():
    model = tiny_codetalker()
    labels = torch.randn(1, 9, V3)
    template = torch.randn(1, V3)
    with torch.no_grad():
        out = model(torch.randn(1, 320 * 14 + 400), template, 1, labels=labels)  # 15 conv frames: 9 at 30 fps
        target = model.autoencoder(labels, template).quantized_latents
    assert out.latents.shape == target.shape == (1, 36, 4)
    torch.testing.assert_close(out.feature_loss, ((out.latents - target) ** 2).mean())
    torch.testing.assert_close(out.motion_loss, ((out.vertices - labels) ** 2).mean())
    torch.testing.assert_close(out.loss, out.motion_loss + out.feature_loss)


def test_stage1_is_frozen_and_in_eval_mode_in_training():
    model = tiny_codetalker().train()
    assert not model.autoencoder.training and not model.autoencoder.encoder.encoder_transformer.dropout.training
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    values, mask = padded_audio([9000, 7000])
    out = model(values, torch.zeros(2, V3), [0, 1], labels=torch.randn(2, 16, V3), attention_mask=mask,
                vertex_mask=frames_mask([16, 12]))
    out.loss.backward()
    assert all(p.grad is None for p in model.autoencoder.parameters())
    assert model.feat_map.weight.grad.abs().sum() > 0  # through the straight-through quantiser and the frozen decoder


def test_from_audio_encoder_with_a_trained_vqvae(encoder_dirs, tmp_path):
    vqvae = tiny_vqvae()
    vqvae.save_pretrained(tmp_path / "vqvae")
    for source in (vqvae, str(tmp_path / "vqvae")):
        model = CodeTalkerForAnimation.from_audio_encoder(
            encoder_dirs["plain"], vertice_dim=V3, train_subjects=SUBJECTS, feature_dim=16, num_hidden_layers=2,
            vqvae=source,
        )
        ours, theirs = model.config.vqvae_config.to_dict(), vqvae.config.to_dict()
        assert {k: v for k, v in ours.items() if k != "_name_or_path"} == {
            k: v for k, v in theirs.items() if k != "_name_or_path"}
        for key, value in vqvae.state_dict().items():
            assert torch.equal(model.autoencoder.state_dict()[key], value)
        assert not any(p.requires_grad for p in model.autoencoder.parameters())
    model.save_pretrained(tmp_path / "stage2")  # one folder, both stages
    loaded = AutoModel.from_pretrained(tmp_path / "stage2")
    assert isinstance(loaded.autoencoder, CodeTalkerVQVAE) and not loaded.autoencoder.training
    assert torch.equal(loaded.autoencoder.quantize.embedding.weight, vqvae.quantize.embedding.weight)


def test_fused_features_enter_before_audio_feature_map_alike_in_training_and_inference():
    """F_d = the fused encoder's output (F_p + FC1(F_s), each item its own F_s) is what `audio_feature_map` gets, the
    same in train() and eval() (the official port applies FC1 only in training and broadcasts only batch 1), with the
    Wav2Sem module in eval mode throughout."""
    no_dropout = {"hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "feat_proj_dropout": 0.0,
                  **LAYER_NORM_BACKBONE}  # a layer-norm conv stack: each item alone as in the batch
    model = tiny_codetalker(backbone="fused", backbone_overrides=no_dropout)
    values, mask = padded_audio([12000, 9000], seed=3)
    template, labels = torch.randn(2, V3), torch.randn(2, 22, V3)
    kwargs = dict(attention_mask=mask, labels=labels, vertex_mask=frames_mask([22, 16]))
    seen = []
    hook = model.audio_feature_map.register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
    with torch.no_grad():
        evaluated = model(values, template, [0, 1], **kwargs)
        model.train()
        assert not model.audio_encoder.wav2sem.training
        trained = model(values, template, [0, 1], **kwargs)
        model.eval()
        alone = model(values[1:, :9000], template[1:], [1], labels=labels[1:, :16])
    hook.remove()
    torch.testing.assert_close(seen[0], evaluated.audio_features)
    torch.testing.assert_close(trained.audio_features, evaluated.audio_features)
    torch.testing.assert_close(alone.audio_features[0], evaluated.audio_features[1, :16], rtol=0, atol=1e-5)
    fused = model.audio_encoder
    semantic = fused.semantic_embeddings(values, mask)
    assert not torch.allclose(semantic[0], semantic[1])  # each item its own F_s, not item 0's broadcast
    assert fused.fc1.weight.abs().sum() > 0  # FC1 is non-zero here, so F_d differs from F_p


# ---------------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------------


def test_presets():
    vocaset = CodeTalkerConfig.from_preset("vocaset", audio_config=Wav2Vec2Config())
    biwi = CodeTalkerConfig.from_preset("biwi", audio_config=Wav2Vec2Config())
    assert (vocaset.num_hidden_layers, vocaset.period, vocaset.audio_frames_per_vertex_frame) == (6, 30, 1)
    assert (biwi.num_hidden_layers, biwi.period, biwi.audio_frames_per_vertex_frame, biwi.audio_resampling) == (
        12, 25, 2, "truncate")
    assert vocaset.feature_dim == biwi.feature_dim == 1024 and vocaset.intermediate_size == 2048
    assert vocaset.vqvae_config.vertice_dim == 15069 and biwi.vqvae_config.vertice_dim == 70110
    assert (vocaset.vqvae_config.tokens_per_frame, vocaset.vqvae_config.code_dim) == (16, 64)
    assert (biwi.vqvae_config.tokens_per_frame, biwi.vqvae_config.code_dim, biwi.vqvae_config.latent_projection) == (
        8, 128, True)
    assert vocaset.num_subjects == 8 and biwi.num_subjects == 6
    partial = CodeTalkerConfig(audio_config=Wav2Vec2Config(), vertice_dim=V3, vqvae_config={"hidden_size": 256,
                                                                                            "tokens_per_frame": 4})
    assert partial.vqvae_config.vertice_dim == V3 and partial.vqvae_config.code_dim == 64  # the rest from the preset
    again = CodeTalkerConfig.from_dict(partial.to_dict())
    assert again.vqvae_config.to_dict() == partial.vqvae_config.to_dict()


def test_config_errors():
    with pytest.raises(ValueError, match="must equal hidden_size"):
        CodeTalkerVQVAEConfig(hidden_size=32, tokens_per_frame=4, code_dim=4)
    with pytest.raises(ValueError, match="reconstructs"):
        CodeTalkerConfig(audio_config=Wav2Vec2Config(), vertice_dim=V3,
                         vqvae_config=CodeTalkerVQVAEConfig.from_preset("vocaset", vertice_dim=V3 + 3, **TINY_VQ))
    with pytest.raises(ValueError, match="not a .* one"):
        CodeTalkerConfig.from_dict(FaceFormerConfig(audio_config=Wav2Vec2Config()).to_dict())
    with pytest.raises(ValueError, match="must be given"):
        CodeTalkerVQVAEConfig(dataset=None, vertice_dim=V3)


# ---------------------------------------------------------------------------------------------------------------------
# Converter (the published key layout, made from our model by the inverse renaming)
# ---------------------------------------------------------------------------------------------------------------------

_INVERSE = [
    (r"^(encoder\.encoder|decoder\.decoder)_transformer\.layers\.(\d+)\.(attention_norm|mlp_norm|attention|mlp)\.(.+)$",
     None),
    (r"^encoder\.vertice_mapping\.", "encoder.vertice_mapping.0."),
    (r"^encoder\.squasher\.conv\.", "encoder.squasher.0.0."),
    (r"^decoder\.expander\.conv\.", "decoder.expander.0.0."),
    (r"^(encoder\.encoder|decoder\.decoder)_(linear_embedding(?:_post|_pre)?)\.", r"\1_\2.net."),
]


def to_published_key(key: str) -> str:
    match = re.match(_INVERSE[0][0], key)
    if match:
        prefix, block, part, rest = match.groups()
        index = 2 * int(block) + part.startswith("mlp")
        inner = "fn.norm" if part.endswith("norm") else "fn.fn"
        return f"{prefix}_transformer.net.{index}.{inner}.{rest}"
    for pattern, replacement in _INVERSE[1:]:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return key


def published_stage1(model: CodeTalkerVQVAE) -> dict:
    state = {to_published_key(k): v for k, v in model.state_dict().items()}
    pe = torch.zeros(50, 1, model.config.hidden_size)
    pe[:, 0] = published_positional_row(model.config.hidden_size)  # only row 0 is checked
    state["encoder.encoder_pos_embedding.pe"] = state["decoder.decoder_pos_embedding.pe"] = pe
    return state


def test_rename_published_stage1_keys():
    assert rename_stage1_key("encoder.encoder_transformer.net.3.fn.fn.l1.weight") == (
        "encoder.encoder_transformer.layers.1.mlp.l1.weight")
    assert rename_stage1_key("decoder.decoder_transformer.net.4.fn.norm.bias") == (
        "decoder.decoder_transformer.layers.2.attention_norm.bias")
    assert rename_stage1_key("encoder.encoder_transformer.net.0.fn.fn.to_qkv.weight") == (
        "encoder.encoder_transformer.layers.0.attention.to_qkv.weight")
    assert rename_stage1_key("encoder.squasher.0.0.weight") == "encoder.squasher.conv.weight"
    assert rename_stage1_key("decoder.decoder_linear_embedding_pre.net.bias") == "decoder.decoder_linear_embedding_pre.bias"
    assert rename_stage1_key("quantize.embedding.weight") == "quantize.embedding.weight"


@pytest.mark.parametrize("dataset", ["vocaset", "biwi"])
def test_converter_round_trip(dataset):
    # The heads are not readable from the shapes: the published 8 (VQ-VAE) and 4 (predictor).
    vq = {**(TINY_VQ_BIWI if dataset == "biwi" else TINY_VQ), "num_attention_heads": 8}
    model = tiny_codetalker(dataset, vqvae_config=vq)
    stage1 = published_stage1(model.autoencoder)
    stage2 = {k: v for k, v in model.state_dict().items() if not k.startswith("autoencoder.")}
    config, state = convert_stage2_state_dict(stage2, stage1, model.config.audio_config, dataset,
                                              train_subjects=SUBJECTS)
    assert config.vqvae_config.latent_projection == (dataset == "biwi")
    assert (config.feature_dim, config.num_hidden_layers, config.vqvae_config.hidden_size) == (16, 2, 16)
    converted = CodeTalkerForAnimation(config).eval()
    converted.load_state_dict(state, strict=True)
    values = torch.randn(1, 9000)
    with torch.no_grad():
        torch.testing.assert_close(converted.predict(values, torch.zeros(V3), 1).vertices,
                                   model.predict(values, torch.zeros(V3), 1).vertices)


def test_converter_names_bad_keys():
    model = tiny_vqvae()
    stage1 = published_stage1(model)
    bad = dict(stage1)
    del bad["decoder.decoder_transformer.net.3.fn.fn.l2.bias"]
    bad["decoder.extra.weight"] = torch.zeros(1)
    bad["decoder.vertice_map_reverse.weight"] = torch.zeros(V3 + 3, 16)
    with pytest.raises(ValueError) as error:
        convert_stage1_state_dict(bad, "vocaset")
    message = str(error.value)
    assert "decoder.decoder_transformer.layers.1.mlp.l2.bias" in message and "decoder.extra.weight" in message
    assert "decoder.vertice_map_reverse.weight" in message
    wrong_pe = dict(stage1)
    wrong_pe["encoder.encoder_pos_embedding.pe"] = torch.ones(50, 1, 16)
    with pytest.raises(ValueError, match="sinusoidal"):
        convert_stage1_state_dict(wrong_pe, "vocaset")
    with pytest.raises(ValueError, match="autoencoder"):
        tiny = tiny_codetalker()
        convert_stage2_state_dict(tiny.state_dict(), published_stage1(tiny.autoencoder), tiny.config.audio_config,
                                  "vocaset", train_subjects=SUBJECTS)


def test_converter_command_line(tmp_path, encoder_dirs):
    """The published `{'state_dict': ...}` files in, a folder that `AutoModel` loads out (stage 1 alone, and both)."""
    from modeling_wav2sem.convert_codetalker_original_checkpoint import main

    torch.manual_seed(0)  # the published heads (8 in the VQ-VAE, 4 in the predictor): not readable from shapes
    model = CodeTalkerForAnimation.from_audio_encoder(
        encoder_dirs["plain"], vertice_dim=V3, train_subjects=SUBJECTS, feature_dim=16, num_hidden_layers=2,
        vqvae_config={**TINY_VQ, "num_attention_heads": 8},
    )
    model = TestCodeTalkerAnimationModel().prepare_model(model).eval()
    torch.save({"state_dict": published_stage1(model.autoencoder)}, tmp_path / "vocaset_stage1.pth.tar")
    stage2 = {k: v for k, v in model.state_dict().items() if not k.startswith("autoencoder.")}
    torch.save({"state_dict": stage2}, tmp_path / "vocaset_stage2.pth.tar")
    main(["--stage1", str(tmp_path / "vocaset_stage1.pth.tar"), "--dataset", "vocaset", "--output_dir", str(tmp_path / "s1")])
    assert isinstance(AutoModel.from_pretrained(tmp_path / "s1"), CodeTalkerVQVAE)
    main(["--stage1", str(tmp_path / "vocaset_stage1.pth.tar"), "--stage2", str(tmp_path / "vocaset_stage2.pth.tar"),
          "--dataset", "vocaset", "--output_dir", str(tmp_path / "both"), "--audio_encoder", encoder_dirs["plain"],
          "--train_subjects", *SUBJECTS])
    loaded = AutoModel.from_pretrained(tmp_path / "both").eval()
    values = torch.randn(1, 9000)
    torch.testing.assert_close(loaded.predict(values, torch.zeros(V3), 2).vertices,
                               model.eval().predict(values, torch.zeros(V3), 2).vertices)
