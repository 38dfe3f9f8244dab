"""The near-homophone analysis: segment-to-frame arithmetic, pooling, the distance, and a tiny end-to-end run."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import HubertConfig, AutoModel, Wav2Vec2FeatureExtractor

from modeling_wav2sem import Wav2SemConfig, Wav2SemFusedEncoder, Wav2SemModel
from training import analyze_homophones as ah


def test_frame_span_arithmetic():
    # 50 Hz: frame k covers [k/50, (k+1)/50). A word over [0.31, 0.62) s covers frames 15 .. 30 (31 exclusive).
    assert ah.frame_span(0.31, 0.62, num_frames=100) == (15, 31)
    assert ah.frame_span(0.30, 0.62, num_frames=100) == (15, 31)   # a boundary on a frame edge starts that frame
    assert ah.frame_span(0.30, 0.60, num_frames=100) == (15, 30)   # ... and ends before the next one
    assert ah.frame_span(0.301, 0.302, num_frames=100) == (15, 16)  # shorter than a frame: still one frame
    assert ah.frame_span(1.95, 2.5, num_frames=99) == (97, 99)     # clipped to the frames the encoder produced
    assert ah.frame_span(5.0, 6.0, num_frames=99) == (98, 99)
    with pytest.raises(ValueError):
        ah.frame_span(0.5, 0.5, num_frames=10)


def test_pool_words_means_the_covered_frames():
    frames = np.arange(20, dtype=np.float32).reshape(10, 2)  # frame k = [2k, 2k+1]
    pooled = ah.pool_words(frames, [(0.0, 0.06), (0.1, 0.12)])  # frames 0..2 and frame 5
    np.testing.assert_allclose(pooled, [[2.0, 3.0], [10.0, 11.0]])


def test_pair_distance_on_constructed_vectors():
    # Word a: two occurrences along x (one scaled: normalisation removes the scale); word b: along y and along x.
    a = np.array([[1.0, 0.0], [3.0, 0.0]])
    b = np.array([[0.0, 2.0], [5.0, 0.0]])
    # Normalised: a = {x, x}, b = {y, x}; distances |x-y| = sqrt(2) twice and |x-x| = 0 twice -> mean sqrt(2)/2.
    assert ah.pair_distance(a, b) == pytest.approx(math.sqrt(2) / 2)
    assert ah.pair_distance(a, a) == pytest.approx(0.0)


def test_read_pairs_skips_header_and_rejects_empty(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("word_a\tword_b\nsheep\tship\nBAT\tpat\n")
    assert ah.read_pairs(path) == [("sheep", "ship"), ("bat", "pat")]
    path.write_text("word_a\tword_b\n")
    with pytest.raises(ValueError, match="No word pairs"):
        ah.read_pairs(path)


@pytest.fixture
def tiny_corpus(tmp_path):
    """Two chapters of noise 'speech' with word timings in the corpus's sidecar format."""
    rng = np.random.default_rng(0)
    root = tmp_path / "LibriSpeech" / "test-clean"
    texts = [["THE", "SHEEP", "SLEPT"], ["A", "SHIP", "SAILED"], ["THE", "SHIP", "SANK"], ["MY", "SHEEP", "RAN"]]
    for chapter in range(2):
        folder = root / "1" / str(chapter)
        folder.mkdir(parents=True)
        lines = []
        for utt in range(2):
            words = texts[chapter * 2 + utt]
            uid = f"1-{chapter}-{utt:04d}"
            sf.write(folder / f"{uid}.flac", rng.standard_normal(24000).astype(np.float32) * 0.1, 16000)
            spans = [(0.1 + 0.4 * i, 0.45 + 0.4 * i) for i in range(3)]
            lines.append(json.dumps({
                "id": uid, "text": " ".join(words), "duration": 1.5,
                "words": [{"word": w, "start": s, "end": e} for w, (s, e) in zip(words, spans)], "phonemes": [],
            }))
        (folder / f"1-{chapter}.alignment.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_end_to_end_on_a_tiny_corpus(tiny_corpus, tmp_path):
    torch.manual_seed(0)
    backbone = AutoModel.from_config(HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    ))
    backbone.save_pretrained(tmp_path / "plain")
    Wav2Vec2FeatureExtractor().save_pretrained(tmp_path / "plain")
    Wav2SemModel(Wav2SemConfig.from_preset("tiny")).save_pretrained(tmp_path / "w2s")
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(tmp_path / "plain", tmp_path / "w2s")
    fused.save_pretrained(tmp_path / "fused")
    (tmp_path / "pairs.tsv").write_text("word_a\tword_b\nsheep\tship\nbat\tpat\n")

    ah.main([
        "--encoder", str(tmp_path / "plain"), "--fused", str(tmp_path / "fused"), "--corpus", str(tiny_corpus),
        "--pairs", str(tmp_path / "pairs.tsv"), "--output_dir", str(tmp_path / "out"), "--num_random_pairs", "3",
    ])
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["missing_pairs"] == ["bat/pat"]
    assert result["occurrences"] == {"sheep": 2, "ship": 2}
    # FC1 starts at zero, so the untrained fused encoder gives exactly the backbone's features: ratio 1.
    assert result["summary"]["ratio_fused_over_plain"] == pytest.approx(1.0, abs=1e-5)
    assert result["plain"]["pairs"]["sheep/ship"] > 0
    assert (tmp_path / "out" / "tsne.png").stat().st_size > 10_000
