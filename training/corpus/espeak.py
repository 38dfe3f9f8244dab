"""Minimal ctypes binding to the espeak-ng C library: synthesis with word and phoneme events.

Only the small, stable part of the legacy ``speak_lib.h`` API is used:
``espeak_Initialize`` in synchronous mode with phoneme events enabled, ``espeak_SetSynthCallback``,
``espeak_SetVoiceByName``, ``espeak_SetParameter`` and ``espeak_Synth``.  The library holds global
state, so one process has one synthesizer (:func:`get_synthesizer`); use processes, not threads,
for parallel synthesis.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from . import VoiceNotAvailable
from .forking import ForkedCall

__all__ = [
    "EspeakNotAvailable",
    "EspeakEvent",
    "SynthResult",
    "EspeakSynthesizer",
    "espeak_available",
    "get_synthesizer",
    "reseed_libc_rand",
    "synthesize_isolated",
    "PendingSynth",
]

INSTALL_HINT = (
    "the espeak-ng shared library (libespeak-ng.so.1) was not found. Install the Debian/Ubuntu "
    "package espeak-ng (`apt-get install espeak-ng`; on other systems the espeak-ng package of "
    "your distribution), or point ESPEAK_NG_LIBRARY at the .so file and ESPEAK_NG_DATA at the "
    "directory holding espeak-ng-data."
)

# speak_lib.h constants
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1

EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_MARK = 3
EVENT_PLAY = 4
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
EVENT_SAMPLERATE = 8
EVENT_NAMES = {
    EVENT_WORD: "word",
    EVENT_SENTENCE: "sentence",
    EVENT_MARK: "mark",
    EVENT_PLAY: "play",
    EVENT_END: "end",
    EVENT_MSG_TERMINATED: "msg_terminated",
    EVENT_PHONEME: "phoneme",
    EVENT_SAMPLERATE: "samplerate",
}

PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PARAM_PUNCTUATION = 5
PARAM_CAPITALS = 6
PARAM_WORDGAP = 7


class EspeakNotAvailable(VoiceNotAvailable):
    """The espeak-ng library (or its data) cannot be loaded."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class EspeakEvent:
    """One synthesis event.

    ``sample`` is the index (at the library's native sample rate) of the output sample at which the
    event happens; ``audio_position`` is the same instant in milliseconds.  ``text_position`` is
    1-based (characters from the start of the text) and ``length`` the word length, for word
    events.  ``phoneme`` is the ASCII phoneme mnemonic (as ``espeak-ng -x`` prints it) for phoneme
    events, ``None`` otherwise.
    """

    type: str
    sample: int
    audio_position: int
    text_position: int
    length: int
    phoneme: str | None = None


@dataclass
class SynthResult:
    audio: np.ndarray  # int16, mono
    sample_rate: int
    events: list[EspeakEvent] = field(default_factory=list)
    pronunciations: list[list[str]] | None = None  # stand-alone pronunciation of each requested word


def _candidate_library_paths() -> list[str]:
    env = os.environ.get("ESPEAK_NG_LIBRARY")
    paths = [env] if env else []
    found = ctypes.util.find_library("espeak-ng")
    if found:
        paths.append(found)
    paths += ["libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.1.dylib", "libespeak-ng.dylib"]
    return paths


def _load_library() -> ctypes.CDLL:
    errors = []
    for path in _candidate_library_paths():
        try:
            return ctypes.CDLL(path)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
    raise EspeakNotAvailable(INSTALL_HINT + " Tried: " + "; ".join(errors))


_LIB: ctypes.CDLL | None = None
_LIB_ERROR: Exception | None = None


def _library() -> ctypes.CDLL:
    global _LIB, _LIB_ERROR
    if _LIB is None:
        if _LIB_ERROR is not None:
            raise _LIB_ERROR
        try:
            lib = _load_library()
        except EspeakNotAvailable as exc:
            _LIB_ERROR = exc
            raise
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        _LIB = lib
    return _LIB


def espeak_available() -> bool:
    """True when the espeak-ng library loads and initialises (cheap after the first call)."""
    try:
        get_synthesizer()
    except EspeakNotAvailable:
        return False
    return True


_LIBC = None


def reseed_libc_rand(seed: int) -> None:
    """Seed the C library's ``rand()``, which espeak-ng's noise sources draw from.

    Re-seeding before every utterance makes the audio of an utterance independent of what the
    process synthesized before, hence bit-identical across runs and worker layouts.
    """
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _LIBC.srand.argtypes = [ctypes.c_uint]
        _LIBC.srand.restype = None
    _LIBC.srand(ctypes.c_uint(seed & 0xFFFFFFFF))


class EspeakSynthesizer:
    """Synchronous espeak-ng synthesis returning int16 audio and word/phoneme events."""

    def __init__(self, data_path: str | None = None):
        lib = _library()
        data_path = data_path or os.environ.get("ESPEAK_NG_DATA")
        path_arg = data_path.encode() if data_path else None
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, path_arg, INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakNotAvailable(
                "espeak_Initialize failed (espeak-ng-data not found?). " + INSTALL_HINT
            )
        self.sample_rate = int(rate)
        self._lib = lib
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[EspeakEvent] = []
        self._callback = _SynthCallback(self._on_synth)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None
        self.used = False

    @property
    def version(self) -> str:
        return self._lib.espeak_Info(None).decode(errors="replace")

    def _on_synth(self, wav, numsamples, events) -> int:
        if wav and numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while True:
            ev = events[i]
            if ev.type == EVENT_LIST_TERMINATED:
                break
            name = EVENT_NAMES.get(ev.type, str(ev.type))
            phoneme = None
            if ev.type == EVENT_PHONEME:
                raw = bytes(ev.id.string)  # 8 bytes, NUL-terminated unless all 8 are used
                phoneme = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")
            self._events.append(
                EspeakEvent(name, int(ev.sample), int(ev.audio_position), int(ev.text_position), int(ev.length), phoneme)
            )
            i += 1
        return 0

    def set_voice(self, voice: str) -> None:
        """Select a voice by name, optionally with a variant, e.g. ``"en-gb-scotland+m3"``."""
        if voice == self._voice:
            return
        err = self._lib.espeak_SetVoiceByName(voice.encode())
        if err != 0:
            raise ValueError(f"espeak-ng does not know the voice {voice!r} (error {err})")
        self._voice = voice

    def pronunciation(self, word: str) -> list[str]:
        """espeak-ng's phonemes (ASCII mnemonics, stress marks removed) for ``word`` on its own,
        in the current voice."""
        buf = ctypes.create_string_buffer(word.encode("utf-8") + b"\0")
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), CHARS_UTF8, ord("|") << 8)
        text = (out or b"").decode("utf-8", errors="replace")
        phones = []
        for chunk in text.replace(" ", "|").split("|"):
            chunk = chunk.strip().lstrip("',%=")
            if chunk and not chunk.startswith("_"):
                phones.append(chunk)
        return phones

    def synthesize(
        self,
        text: str,
        voice: str = "en-us",
        rate: int = 175,
        pitch: int = 50,
        pitch_range: int = 50,
        word_gap: int = 0,
        volume: int = 100,
        rand_seed: int | None = None,
    ) -> SynthResult:
        """Synthesize ``text`` (UTF-8, plain text, no SSML) with the given settings."""
        with self._lock:
            self.used = True
            self.set_voice(voice)
            # SetVoiceByName resets the parameters to the voice's defaults, so set them every time.
            for param, value in (
                (PARAM_RATE, rate),
                (PARAM_PITCH, pitch),
                (PARAM_RANGE, pitch_range),
                (PARAM_WORDGAP, word_gap),
                (PARAM_VOLUME, volume),
                (PARAM_PUNCTUATION, 0),
                (PARAM_CAPITALS, 0),
            ):
                self._lib.espeak_SetParameter(param, int(value), 0)
            if rand_seed is not None:
                reseed_libc_rand(rand_seed)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data, len(data))
            err = self._lib.espeak_Synth(buf, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with error {err}")
            self._lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
            events = self._events
            self._chunks, self._events = [], []
        return SynthResult(audio.astype(np.int16, copy=False), self.sample_rate, events)


_SYNTH: EspeakSynthesizer | None = None


class PendingSynth:
    """An utterance being synthesized in a forked child process; :meth:`result` waits for it."""

    def __init__(self, call: ForkedCall):
        self._call = call

    def result(self) -> SynthResult:
        return self._call.result()


def synthesize_isolated(text: str, pronounce: list[str] | None = None, **settings) -> PendingSynth:
    """Start synthesizing ``text`` in a forked child of a never-used synthesizer; returns at once.

    espeak-ng carries hidden state from one utterance to the next (pitch-cycle phase and the like),
    so the same text synthesized twice in one process differs by a few samples in duration.
    Forking from a process that initialised espeak-ng but never synthesized gives every utterance
    the same starting state: audio and event timings depend only on the text and the settings.
    ``pronounce``: words whose stand-alone pronunciations to return as well (computed in the
    child after synthesis, in the same voice).  POSIX only (``os.fork``).
    """
    synth = get_synthesizer()
    if synth.used:
        raise RuntimeError("synthesize_isolated needs a synthesizer that has not synthesized in this process")

    def child() -> SynthResult:
        res = synth.synthesize(text, **settings)
        res.pronunciations = [synth.pronunciation(w) for w in pronounce] if pronounce else None
        return res

    return PendingSynth(ForkedCall(child, what="espeak-ng synthesis"))


def get_synthesizer() -> EspeakSynthesizer:
    """The process-wide synthesizer (espeak-ng keeps global state; initialise once)."""
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = EspeakSynthesizer()
    return _SYNTH
