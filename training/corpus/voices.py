"""The voices the corpus generator speaks with: one registry (:data:`VOICES`), one interface.

A voice gives the synthetic speakers (a fixed table: speaker N is the same voice in every corpus), draws an
utterance's jitter around its speaker, starts a synthesis (``submit``; ``result()`` waits for it) and turns the
result into word-assigned phoneme segments (``align``, ``ValueError`` when it cannot).  :mod:`training.corpus.build`
does everything else the same way for every voice: planning, retries, levelling, resampling to 16 kHz, padding,
writing.

* ``espeak``: espeak-ng (formant synthesis), 8 English accents x 16 voice variants with their own pitch, range and
  rate; timings from its phoneme events (:mod:`training.corpus.alignment`).  The default: the committed sample.
* ``piper``: the neural voice en_US-joe-medium (:mod:`training.corpus.piper`), one male US speaker.  Synthetic
  speakers vary piper's ``length_scale`` (rate), ``noise_scale`` and ``noise_w`` (voice quality and rhythm), a
  playback-speed factor (the 22.05 kHz output read as ``speed`` x 22.05 kHz: pitch and formants shifted together,
  like a smaller or larger vocal tract) and level.  That is variety, not different people.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import alignment as A
from .forking import ForkedCall, Ready

__all__ = ["VOICES", "EspeakSpeaker", "PiperSpeaker", "EspeakVoice", "PiperVoice", "get_voice"]

SPEAKER_TABLE_SEED = 20250611  # fixed: speaker N is the same voice in every corpus
SPEAKER_ID_BASE = 1001


# ------------------------------------------------------------------------------------------------ espeak-ng
# espeak-ng voice names for the accents used ("en" is espeak-ng's British English voice).
ACCENTS = (
    ("en-us", "en-us"),
    ("en-gb", "en"),
    ("en-gb-scotland", "en-gb-scotland"),
    ("en-gb-x-rp", "en-gb-x-rp"),
    ("en-029", "en-029"),
    ("en-us-nyc", "en-us-nyc"),
    ("en-gb-x-gbclan", "en-gb-x-gbclan"),
    ("en-gb-x-gbcwmd", "en-gb-x-gbcwmd"),
)
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "klatt4")


@dataclass(frozen=True)
class EspeakSpeaker:
    id: int
    accent: str  # e.g. "en-gb-scotland"
    voice: str  # espeak-ng voice name with variant, e.g. "en-gb-scotland+f3"
    sex: str  # "F" or "M" (from the variant)
    pitch: int  # espeak-ng base pitch, 0-99
    pitch_range: int  # 0-99
    rate: int  # words per minute
    peak: float  # output peak level (linear, full scale = 1)

    def describe(self) -> str:
        return f"{self.voice} pitch={self.pitch} range={self.pitch_range} rate={self.rate}"


class EspeakVoice:
    name = "espeak"
    speakers_header = (
        "; Synthetic speakers (espeak-ng voice settings); LibriSpeech SPEAKERS.TXT layout.",
        "; NAME is the espeak-ng voice+variant with base pitch, pitch range and rate (words/min).",
    )

    def __init__(self, workers: int = 1, speech_seconds: tuple[float, float] | None = None):
        from .espeak import get_synthesizer

        self.synth = get_synthesizer()  # raises EspeakNotAvailable with an install hint
        if self.synth.used:
            raise RuntimeError("the espeak voice needs a process that has not synthesized with espeak-ng yet")

    def info(self) -> dict:
        return {"espeak_ng": self.synth.version}

    @staticmethod
    def speakers(n: int) -> list[EspeakSpeaker]:
        """The first ``n`` speakers of a fixed table (independent of the corpus seed).

        The accents cycle so that any prefix of the table mixes all of them; each accent gets its
        variants in a shuffled order.
        """
        rng = random.Random(SPEAKER_TABLE_SEED)
        per_accent = {a: rng.sample(VARIANTS, len(VARIANTS)) for a, _ in ACCENTS}
        combos = []
        for k in range(len(VARIANTS)):
            for accent, voice in ACCENTS:
                combos.append((accent, voice, per_accent[accent][k]))
        if n > len(combos):
            raise ValueError(f"at most {len(combos)} speakers")
        out = []
        for k, (accent, voice, variant) in enumerate(combos[:n]):
            female = variant.startswith("f")
            pitch = rng.randint(45, 72) if female else rng.randint(22, 55)
            out.append(EspeakSpeaker(
                id=SPEAKER_ID_BASE + k, accent=accent, voice=f"{voice}+{variant}", sex="F" if female else "M",
                pitch=pitch, pitch_range=rng.randint(30, 85), rate=rng.randint(140, 182),
                peak=round(rng.uniform(0.1, 0.2), 3),
            ))
        return out

    @staticmethod
    def jitter(speaker: EspeakSpeaker, rng: random.Random) -> dict:
        return {"rate": speaker.rate + rng.randint(-6, 6), "pitch": min(99, max(0, speaker.pitch + rng.randint(-4, 4)))}

    def submit(self, spoken: str, words: list[str], speaker: EspeakSpeaker, settings: dict, seed: int):
        from .espeak import synthesize_isolated

        return synthesize_isolated(spoken, pronounce=words, voice=speaker.voice, rate=settings["rate"],
                                   pitch=settings["pitch"], pitch_range=speaker.pitch_range, rand_seed=seed)

    @staticmethod
    def align(result, word_starts: list[int]) -> list[A.Segment]:
        segs = A.raw_segments(result.events, len(result.audio))
        segs = A.assign_words(segs, word_starts, result.pronunciations)
        return A.refine(segs, result.audio, result.sample_rate)


# ------------------------------------------------------------------------------------------------ piper
@dataclass(frozen=True)
class PiperSpeaker:
    id: int
    sex: str
    length_scale: float  # piper's duration scale (> 1: slower)
    noise_scale: float  # piper's prior noise (voice quality)
    noise_w: float  # piper's duration-predictor noise (rhythm)
    speed: float  # playback speed of the 22.05 kHz output (pitch and formants x speed, durations / speed)
    peak: float  # output peak level (linear, full scale = 1)

    def describe(self) -> str:
        return (f"en_US-joe-medium length_scale={self.length_scale} noise_scale={self.noise_scale} "
                f"noise_w={self.noise_w} speed={self.speed}")


class PiperVoice:
    name = "piper"
    speakers_header = (
        "; Synthetic speakers (piper voice en_US-joe-medium, one male US speaker, with varied settings);"
        " LibriSpeech SPEAKERS.TXT layout.",
        "; NAME is piper's length_scale, noise_scale and noise_w and the playback speed factor (pitch and formants).",
    )
    MAX_SPEAKERS = 1000

    def __init__(self, workers: int = 1, speech_seconds: tuple[float, float] | None = None):
        from .piper import get_piper

        self.synth = get_piper()  # raises PiperNotAvailable with an install hint
        self.fork = workers > 1  # in-process otherwise: the output does not depend on what ran before
        self.speech_seconds = speech_seconds  # sentences clearly outside are refused before the audio is made

    def info(self) -> dict:
        return {"piper": self.synth.version}

    @classmethod
    def speakers(cls, n: int) -> list[PiperSpeaker]:
        if n > cls.MAX_SPEAKERS:
            raise ValueError(f"at most {cls.MAX_SPEAKERS} speakers")
        rng = random.Random(f"{SPEAKER_TABLE_SEED}/piper")
        return [PiperSpeaker(id=SPEAKER_ID_BASE + k, sex="M", length_scale=round(rng.uniform(0.85, 1.15), 3),
                             noise_scale=round(rng.uniform(0.4, 0.8), 3), noise_w=round(rng.uniform(0.5, 1.0), 3),
                             speed=round(rng.uniform(0.92, 1.1), 3), peak=round(rng.uniform(0.1, 0.2), 3))
                for k in range(n)]

    @staticmethod
    def jitter(speaker: PiperSpeaker, rng: random.Random) -> dict:
        return {"length_scale": round(speaker.length_scale * rng.uniform(0.96, 1.04), 4)}

    def submit(self, spoken: str, words: list[str], speaker: PiperSpeaker, settings: dict, seed: int):
        synth, speed = self.synth, speaker.speed
        limits = None if self.speech_seconds is None else tuple(t * speed for t in self.speech_seconds)

        def run():
            try:
                res = synth.synthesize(spoken, length_scale=settings["length_scale"], noise_scale=speaker.noise_scale,
                                       noise_w=speaker.noise_w, seed=seed, pronounce=words, speech_seconds=limits)
            except ValueError as exc:  # this text cannot be said: align() rejects the candidate
                return exc
            res.sample_rate = int(round(res.sample_rate * speed))  # played faster or slower
            return res

        return ForkedCall(run, what="piper synthesis") if self.fork else Ready(run())

    @staticmethod
    def align(result, word_starts: list[int]) -> list[A.Segment]:
        from .piper import phoneme_segments

        if isinstance(result, ValueError):
            raise result
        return phoneme_segments(result, len(word_starts))


VOICES = {"espeak": EspeakVoice, "piper": PiperVoice}


def get_voice(name: str, workers: int = 1, speech_seconds: tuple[float, float] | None = None):
    """The voice ``name`` of :data:`VOICES`, loaded (raises ``VoiceNotAvailable`` with an install hint).
    ``speech_seconds``: the accepted speech durations, for a voice that can refuse a sentence before making it."""
    if name not in VOICES:
        raise ValueError(f"unknown voice {name!r}; choose one of {sorted(VOICES)}")
    return VOICES[name](workers=workers, speech_seconds=speech_seconds)
