"""FaceFormer as a transformers model with a swappable audio encoder (plain wav2vec2-family or Wav2SemFusedEncoder).

Tiny random encoders saved to temporary folders; CPU, fp32.
"""

import pytest
import torch
from animation_model_tests import AnimationModelTesterMixin
from conftest import SUBJECTS, TINY_BACKBONE, V3, padded_audio, samples_for_conv_frames, tiny_audio_config
from transformers import Wav2Vec2Config

from modeling_wav2sem.configuration_faceformer import FaceFormerConfig
from modeling_wav2sem.modeling_faceformer import (
    FaceFormerForAnimation,
    alibi_slopes,
    alignment_mask,
    biased_causal_mask,
    periodic_positional_encoding,
)

INF = float("inf")


def tiny_config(audio_config, **overrides):
    kwargs = dict(vertice_dim=V3, feature_dim=16, train_subjects=SUBJECTS)
    return FaceFormerConfig(audio_config=audio_config, **{**kwargs, **overrides})


def randomize_output_layer(model, seed=3):
    """The output layer starts at zero (prediction == template); give it weights so the tests see the decoder."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.vertice_map_r.weight.copy_(torch.randn(model.vertice_map_r.weight.shape, generator=gen) * 0.3)
        model.vertice_map_r.bias.copy_(torch.randn(model.vertice_map_r.bias.shape, generator=gen) * 0.1)
    return model


def tiny_model(backbone="wav2vec2", seed=0, backbone_overrides=None, **overrides):
    """A tiny random FaceFormer around a `backbone` encoder ("fused": a HuBERT backbone + tiny Wav2Sem)."""
    torch.manual_seed(seed)
    audio_config = tiny_audio_config(backbone, backbone_overrides)
    return randomize_output_layer(FaceFormerForAnimation(tiny_config(audio_config, **overrides))).eval()


# ---------------------------------------------------------------------------------------------------------------------
# Masks and encodings
# ---------------------------------------------------------------------------------------------------------------------


def test_biased_mask_hand_computed():
    # period 2, 2 heads: slopes 2**-4 and 2**-8; bias -slope * floor((i - j) / 2) on and below the diagonal.
    assert alibi_slopes(2) == [1 / 16, 1 / 256]
    steps = torch.tensor(
        [
            [0, INF, INF, INF, INF],
            [0, 0, INF, INF, INF],
            [1, 0, 0, INF, INF],
            [1, 1, 0, 0, INF],
            [2, 1, 1, 0, 0],
        ]
    )
    expected = torch.stack([-steps / 16, -steps / 256])
    torch.testing.assert_close(biased_causal_mask(2, 5, period=2), expected, rtol=0, atol=0)


def test_alibi_slopes_match_faceformer():
    assert alibi_slopes(4) == [0.25, 0.0625, 0.015625, 0.00390625]
    assert alibi_slopes(6) == [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]  # non-power-of-two rule


def test_biased_mask_has_no_length_ceiling():
    model = tiny_model(max_seq_len=8, period=3, num_attention_heads=4)
    small = model.biased_mask(5, "cpu", torch.float32)
    long = model.biased_mask(700, "cpu", torch.float32)  # beyond max_seq_len and FaceFormer's 600
    assert long.shape == (4, 700, 700)
    torch.testing.assert_close(long[:, :5, :5], small, rtol=0, atol=0)
    torch.testing.assert_close(long, biased_causal_mask(4, 700, 3), rtol=0, atol=0)
    assert long[0, 699, 0] == -0.25 * (699 // 3)


def test_alignment_mask():
    allowed = ~alignment_mask(3, 3, 1)
    assert torch.equal(allowed, torch.eye(3, dtype=torch.bool))  # VOCASET: frame t sees audio frame t
    allowed = ~alignment_mask(3, 6, 2)  # BIWI: frame t sees audio frames 2t and 2t+1
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(allowed, expected)


def test_periodic_positional_encoding_is_periodic():
    model = tiny_model(period=4)
    encoded = model._positional(torch.zeros(1, 11, 16))[0]  # eval: no dropout
    torch.testing.assert_close(encoded[4:8], encoded[0:4])
    torch.testing.assert_close(encoded[8:11], encoded[0:3])
    assert len({tuple(row.tolist()) for row in encoded[:4]}) == 4  # distinct within a period
    torch.testing.assert_close(encoded[:4], periodic_positional_encoding(4, 16))
    assert torch.equal(encoded[0, 1::2], torch.ones(8)) and torch.equal(encoded[0, 0::2], torch.zeros(8))


# ---------------------------------------------------------------------------------------------------------------------
# Audio resampled to the vertex frame rate
# ---------------------------------------------------------------------------------------------------------------------


def test_interpolation_happens_on_conv_features_before_the_transformer():
    model = tiny_model()
    encoder = model.audio_encoder
    audio = torch.randn(1, 16000)
    with torch.no_grad():
        features, frames = model.encode_audio(audio, num_frames=23)
        conv = encoder.feature_extractor(audio)  # (1, C, 49)
        conv = torch.nn.functional.interpolate(conv, size=23, mode="linear", align_corners=True)
        hidden, _ = encoder.feature_projection(conv.transpose(1, 2))
        expected = encoder.encoder(hidden).last_hidden_state
    torch.testing.assert_close(features, expected)
    assert not model.audio_encoder._forward_hooks and not encoder.feature_extractor._forward_hooks  # hook removed


@pytest.mark.parametrize("mode", ["interpolate", "truncate"])
def test_biwi_pairs_two_audio_frames_per_vertex_frame(mode):
    model = tiny_model(dataset="biwi", vertice_dim=V3, feature_dim=16, train_subjects=SUBJECTS, audio_resampling=mode)
    assert model.config.period == 25 and model.config.audio_frames_per_vertex_frame == 2
    with torch.no_grad():
        audio = torch.randn(1, samples_for_conv_frames(50))  # 50 conv frames = 1 s = 25 vertex frames
        features, frames = model.encode_audio(audio)
        assert frames == [25] and features.shape == (1, 50, 32)
        torch.testing.assert_close(features, model.audio_encoder(audio).last_hidden_state)  # already paired: as is
        audio = torch.randn(1, samples_for_conv_frames(57))
        features, frames = model.encode_audio(audio)
        assert frames == [28] and features.shape == (1, 56, 32)
        if mode == "truncate":  # the original's BIWI rule: drop the conv frames beyond 2T
            encoder = model.audio_encoder
            hidden, _ = encoder.feature_projection(encoder.feature_extractor(audio)[:, :, :56].transpose(1, 2))
            torch.testing.assert_close(features, encoder.encoder(hidden).last_hidden_state)
        out = model.predict(audio, torch.zeros(V3), 0)
        assert out.vertices.shape == (1, 28, V3)


# ---------------------------------------------------------------------------------------------------------------------
# Model behaviour
# ---------------------------------------------------------------------------------------------------------------------


def test_zero_initialised_output_layer_predicts_the_template():
    torch.manual_seed(0)
    model = FaceFormerForAnimation(tiny_config(Wav2Vec2Config(**TINY_BACKBONE))).eval()
    assert not model.vertice_map_r.weight.any() and not model.vertice_map_r.bias.any()
    template = torch.randn(2, V3)
    audio = torch.randn(2, 9000)
    out = model.predict(audio, template, torch.tensor([0, 2]))
    assert torch.equal(out.vertices, template[:, None].expand_as(out.vertices))
    labels = torch.randn(2, 7, 20, 3)
    out = model(audio, template.view(2, 20, 3), "s1", labels=labels)  # (V, 3) shapes and a subject name
    assert torch.equal(out.vertices, template[:, None].expand(2, 7, V3))
    torch.testing.assert_close(out.loss, ((template[:, None] - labels.flatten(-2)) ** 2).mean())


@pytest.mark.parametrize(
    "overrides",
    [{}, {"dataset": "biwi", "vertice_dim": V3, "feature_dim": 16, "train_subjects": SUBJECTS, "num_hidden_layers": 2}],
    ids=["vocaset", "biwi-2-layers"],
)
def test_cached_inference_equals_naive(overrides):
    model = tiny_model(**overrides)
    values, mask = padded_audio([24000, 15000])
    template = torch.randn(2, V3)
    cached = model.predict(values, template, torch.tensor([1, 2]), attention_mask=mask)
    naive = model.predict(values, template, torch.tensor([1, 2]), attention_mask=mask, use_cache=False)
    torch.testing.assert_close(cached.vertices, naive.vertices, rtol=0, atol=1e-5)
    torch.testing.assert_close(cached.last_hidden_state, naive.last_hidden_state, rtol=0, atol=1e-5)
    assert cached.vertex_mask.sum(-1).tolist() == model.num_frames_for_audio([74, 46])
    # The generated sequence is a fixed point of teacher forcing (same decoder, same masks), once the one quirk of
    # the original is removed: teacher forcing starts from vertice_map(0) = its bias, generation from nothing.
    frames = cached.vertices.shape[1]
    with torch.no_grad():
        model.vertice_map.bias.zero_()
        cached = model.predict(values, template, torch.tensor([1, 2]), attention_mask=mask)
        forced = model(values[:1], template[:1], 1, labels=cached.vertices[:1], attention_mask=mask[:1])
    torch.testing.assert_close(forced.vertices, cached.vertices[:1, :frames], rtol=0, atol=1e-5)


def test_long_input_beyond_600_frames():
    model = tiny_model()
    audio = torch.randn(1, samples_for_conv_frames(1167))  # 23.3 s: 1167 conv frames -> 700 vertex frames
    template = torch.randn(1, V3)
    with torch.no_grad():
        model.vertice_map.bias.zero_()  # see test_cached_inference_equals_naive
    out = model.predict(audio, template, 0)
    assert out.vertices.shape == (1, 700, V3) and torch.isfinite(out.vertices).all()
    with torch.no_grad():
        forced = model(audio, template, 0, labels=out.vertices)
    torch.testing.assert_close(forced.vertices, out.vertices, rtol=0, atol=1e-5)
    assert forced.loss < 1e-9


# data2vec-audio is left out: transformers' Data2VecAudioModel itself leaks padding (its stacked positional convs).
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # raised inside transformers' WavLM
@pytest.mark.parametrize("backbone", ["hubert", "wavlm", "fused"])  # wav2vec2: in the mixin below
def test_padded_batch_gives_each_item_its_own_result(backbone):
    # A group-norm conv stack normalises over time and so sees padding; the layer-norm one does not.
    model = tiny_model(backbone, backbone_overrides={"feat_extract_norm": "layer", "do_stable_layer_norm": True})
    lengths, frames = [20000, 12000, 9000], [37, 22, 16]
    values, mask = padded_audio(lengths)
    gen = torch.Generator().manual_seed(5)
    labels = torch.randn(3, max(frames), V3, generator=gen)
    vertex_mask = torch.arange(max(frames))[None] < torch.tensor(frames)[:, None]
    template = torch.randn(3, V3, generator=gen)
    subjects = torch.tensor([0, 1, 2])
    with torch.no_grad():
        batched = model(values, template, subjects, labels=labels, attention_mask=mask, vertex_mask=vertex_mask)
        squared_sum, count = 0.0, 0
        for i, (n, t) in enumerate(zip(lengths, frames)):
            alone = model(values[i : i + 1, :n], template[i : i + 1], subjects[i : i + 1], labels=labels[i : i + 1, :t])
            torch.testing.assert_close(batched.vertices[i, :t], alone.vertices[0], rtol=0, atol=1e-4)
            squared_sum, count = squared_sum + alone.loss * t * V3, count + t * V3
        torch.testing.assert_close(batched.loss, squared_sum / count)
        generated = model.predict(values, template, subjects, attention_mask=mask)
        for i, n in enumerate(lengths):
            alone = model.predict(values[i : i + 1, :n], template[i : i + 1], subjects[i])
            t = alone.vertices.shape[1]
            assert int(generated.vertex_mask[i].sum()) == t
            torch.testing.assert_close(generated.vertices[i, :t], alone.vertices[0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("backbone", ["wavlm", "data2vec-audio"])
def test_other_encoder_types(backbone):
    model = tiny_model(backbone)
    audio, template = torch.randn(1, 12000), torch.randn(1, V3)
    cached = model.predict(audio, template, 1)
    assert cached.vertices.shape == (1, 22, V3)
    torch.testing.assert_close(cached.vertices, model.predict(audio, template, 1, use_cache=False).vertices)


@pytest.mark.parametrize("use_cache", [False, True], ids=["naive-as-original", "cached"])
def test_autoregressive_training_forward_and_frozen_cnn(use_cache):
    model = tiny_model().train()
    values, mask = padded_audio([9000, 7000])
    labels = torch.randn(2, 14, V3)
    vertex_mask = torch.arange(14)[None] < torch.tensor([[14], [10]])
    out = model(values, torch.zeros(2, V3), [0, "s2"], labels=labels, attention_mask=mask, vertex_mask=vertex_mask,
                teacher_forcing=False, use_cache=use_cache)
    out.loss.backward()
    assert model.transformer_decoder.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0
    assert model.audio_feature_map.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.audio_encoder.feature_extractor.parameters())
    assert model.audio_encoder.encoder.layers[0].attention.q_proj.weight.grad is not None  # encoder layers train


def test_config_without_a_dataset_needs_every_field():
    with pytest.raises(ValueError, match="fields must be given"):
        FaceFormerConfig(dataset=None, vertice_dim=V3)


# ---------------------------------------------------------------------------------------------------------------------
# What every animation model shares (shapes, frame counts, padded batches, training, encoder swap, round trips, errors)
# ---------------------------------------------------------------------------------------------------------------------


class TestFaceFormerAnimationModel(AnimationModelTesterMixin):
    model_class = FaceFormerForAnimation
    tiny_config = {"feature_dim": 16}

    def prepare_model(self, model):
        return randomize_output_layer(model)
