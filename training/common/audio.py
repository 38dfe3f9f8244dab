"""Audio files as the models want them: mono float32 at 16 kHz (soundfile decoding, soxr resampling), and
per-utterance normalisation as `Wav2Vec2FeatureExtractor(do_normalize=True)` does. One home for every pipeline."""

import io

import numpy as np
import soundfile as sf
import soxr

SAMPLING_RATE = 16000


def audio_source(audio):
    """A path or a file-like object for soundfile, from a path string or a Hub-style {'bytes', 'path'} dict."""
    if isinstance(audio, dict):
        return io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio.get("path") or ""
    return audio


def decode_audio(audio, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Mono float32 audio at `sampling_rate` (soundfile decoding, soxr resampling)."""
    samples, rate = sf.read(audio_source(audio), dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    if rate != sampling_rate:
        samples = soxr.resample(samples, rate, sampling_rate).astype(np.float32)
    return samples


def normalize(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, as `Wav2Vec2FeatureExtractor(do_normalize=True)` (epsilon 1e-7)."""
    return ((samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)).astype(np.float32)
