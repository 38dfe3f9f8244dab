"""Synthetic VOCASET / BIWI lip dataset generator (training.make_sample_faces, training.faces)."""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")
pytest.importorskip("matplotlib")

from training.faces.animate import FaceAnimator  # noqa: E402
from training.faces.corpus import CorpusError, load_corpus  # noqa: E402
from training.faces.datasets import (  # noqa: E402
    BIWI_SENTENCES,
    BIWI_SPLIT_SUBJECTS,
    BIWI_SUBJECTS,
    VOCASET_SENTENCES,
    VOCASET_SUBJECTS,
    GRID_STEPS,
    get_spec,
    plan_sequences,
)
from training.faces.mesh import build_topology  # noqa: E402
from training.faces.regions import read_region, write_region  # noqa: E402
from training.faces.visemes import P_INDEX, mouth_parameters, normalize_phoneme  # noqa: E402
from training.make_sample_faces import generate, main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "training" / "sample_data" / "vocaset"
COMMITTED_BIWI = REPO / "training" / "sample_data" / "biwi"

# Hand-written espeak-ng mnemonics for the fixture's words.
LEXICON = {
    "THE": ["D", "@"],
    "SHEEP": ["S", "'i:", "p"],
    "SHIP": ["S", "'I", "p"],
    "PAT": ["p", "'a", "t"],
    "BAT": ["b", "'a", "t"],
    "FAN": ["f", "'a", "n"],
    "VAN": ["v", "'a", "n"],
    "BOOT": ["b", "'u:", "t"],
    "SAW": ["s", "'O:"],
    "A": ["a#"],
    "MAN": ["m", "'a", "n"],
    "WITH": ["w", "I", "D"],
    "GOAT": ["g", "'oU", "t"],
}
SENTENCES = [
    "THE SHEEP SAW A SHIP",
    "A MAN WITH A FAN",
    "THE BAT SAW A GOAT",
    "PAT SAW THE VAN",
    "A BOOT WITH A SHEEP",
    "THE MAN SAW THE SHIP",
]


def _duration(ph: str) -> float:
    key = normalize_phoneme(ph)
    return 0.16 if key in {"i:", "u:", "O:", "oU", "a"} else (0.07 if key in {"@", "a#", "I"} else 0.085)


def _write_utterance(chapter_dir: Path, uid: str, text: str, rng: np.random.Generator) -> dict:
    t = 0.2
    words, phones = [], []
    for w in text.split():
        ws = t
        for ph in LEXICON[w]:
            d = _duration(ph)
            phones.append({"phoneme": ph, "start": round(t, 4), "end": round(t + d, 4)})
            t += d
        words.append({"word": w, "start": round(ws, 4), "end": round(t, 4)})
        t += 0.03
    phones.append({"phoneme": "_:", "start": round(t, 4), "end": round(t + 0.1, 4)})
    duration = t + 0.2
    n = int(round(duration * 16000))
    tt = np.arange(n) / 16000
    audio = 0.1 * np.sin(2 * np.pi * 140 * tt) + 0.01 * rng.standard_normal(n)
    sf.write(str(chapter_dir / f"{uid}.flac"), audio.astype(np.float32), 16000)
    return {"id": uid, "text": text, "duration": round(duration, 4), "words": words, "phonemes": phones}


def make_corpus(root: Path, per_speaker: int = 3, sidecars: bool = True) -> Path:
    """A tiny LibriSpeech-layout corpus: 3 splits x 2 speakers x ``per_speaker`` utterances."""
    rng = np.random.default_rng(0)
    lib = root / "LibriSpeech"
    k = 0
    for split, speakers in (("train-clean-100", ("19", "26")), ("dev-clean", ("84",)), ("test-clean", ("121", "237"))):
        for spk in speakers:
            chapter = "100"
            cdir = lib / split / spk / chapter
            cdir.mkdir(parents=True)
            recs, trans = [], []
            for i in range(per_speaker):
                uid = f"{spk}-{chapter}-{i:04d}"
                text = SENTENCES[k % len(SENTENCES)]
                k += 1
                recs.append(_write_utterance(cdir, uid, text, rng))
                trans.append(f"{uid} {text}")
            (cdir / f"{spk}-{chapter}.trans.txt").write_text("\n".join(trans) + "\n")
            if sidecars:
                with open(cdir / f"{spk}-{chapter}.alignment.jsonl", "w") as f:
                    for r in recs:
                        f.write(json.dumps(r) + "\n")
    return lib


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def vocaset(corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vocaset") / "vocaset"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = generate(corpus, out, fmt="vocaset", seed=3, max_sentences=1, progress=False, preview=False,
                        save_params=True)
    return out, info


@pytest.fixture(scope="module")
def biwi(corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("biwi") / "biwi"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = generate(corpus, out, fmt="biwi", seed=3, max_sentences=1, subjects=["F2", "M3"], progress=False,
                        preview=False)
    return out, info


# ------------------------------------------------------------------------------------------------
# phonemes and visemes


def test_normalize_espeak_mnemonics():
    assert normalize_phoneme("'i:") == "i:"
    assert normalize_phoneme(",I") == "I"
    assert normalize_phoneme("i@3") == "i@3"
    assert normalize_phoneme("r-") == "r-"
    assert normalize_phoneme("_:") == "_"
    assert normalize_phoneme(";") == ""
    assert normalize_phoneme("aI@") == "aI@"
    assert normalize_phoneme("Q") == "@"  # unknown symbols fall back to a weak schwa


def _params(phones, fps=60):
    ali, t = [], 0.25
    for ph, d in phones:
        ali.append({"phoneme": ph, "start": t, "end": t + d})
        t += d
    dur = t + 0.25
    mp = mouth_parameters(ali, dur, int(round(dur * fps)), fps)
    return mp, ali


def _at(mp, ali, k, name, fps=60):
    return mp[int(round(0.5 * (ali[k]["start"] + ali[k]["end"]) * fps)), P_INDEX[name]]


def test_near_homophone_mouth_parameters_differ():
    sheep, a1 = _params([("S", 0.11), ("'i:", 0.17), ("p", 0.09)])
    ship, a2 = _params([("S", 0.11), ("'I", 0.10), ("p", 0.09)])
    assert _at(sheep, a1, 1, "spread") > _at(ship, a2, 1, "spread") + 0.3  # /i:/ spread
    assert _at(ship, a2, 1, "open") > _at(sheep, a1, 1, "open")  # /I/ more open
    pat, a3 = _params([("p", 0.09), ("'a", 0.15), ("t", 0.08)])
    tat, a4 = _params([("t", 0.09), ("'a", 0.15), ("t", 0.08)])
    assert _at(pat, a3, 0, "close") > 0.85 and _at(tat, a4, 0, "close") < 0.1
    fan, a5 = _params([("f", 0.10), ("'a", 0.15), ("n", 0.08)])
    assert _at(fan, a5, 0, "tuck") > 0.8 and _at(pat, a3, 0, "tuck") < 0.1
    boot, a6 = _params([("b", 0.07), ("'u:", 0.17), ("t", 0.08)])
    beat, a7 = _params([("b", 0.07), ("'i:", 0.17), ("t", 0.08)])
    assert _at(boot, a6, 1, "round") > 0.7 and _at(beat, a7, 1, "round") < 0.1


def _lip_gap(verts, topo):
    """Vertical distance between the inner lip contours at the middle of the mouth."""
    up = verts[..., topo.groups["lip_inner_upper"], 1]
    lo = verts[..., topo.groups["lip_inner_lower"], 1]
    mid = up.shape[-1] // 2
    return up[..., mid] - lo[..., mid]


def test_bilabial_closure_vs_alveolar_on_the_mesh():
    anim = FaceAnimator(seed=0)
    out = {}
    for word, phones in (("pat", ["p", "'a", "t"]), ("tat", ["t", "'a", "t"])):
        ali = [{"phoneme": p, "start": 0.25 + 0.1 * i, "end": 0.35 + 0.1 * i} for i, p in enumerate(phones)]
        v, _ = anim.animate("FaceTalk_170809_00138_TA", f"t-{word}", ali, [], 0.8, 48, 60)
        out[word] = v[int(round(0.30 * 60))]
    gap_p = _lip_gap(out["pat"], anim.topo)
    gap_t = _lip_gap(out["tat"], anim.topo)
    assert gap_p < 0.0005  # lips sealed for /p/ (noise is sub-0.1 mm)
    assert gap_t > 0.0015  # lips apart for /t/
    # the vowel opens the mouth much more than either consonant
    ali = [{"phoneme": "'a", "start": 0.25, "end": 0.45}]
    v, _ = anim.animate("FaceTalk_170809_00138_TA", "t-a", ali, [], 0.7, 42, 60)
    assert _lip_gap(v[21], anim.topo) > 1.5 * gap_t


def test_sequence_is_deterministic_and_seed_dependent():
    ali = [{"phoneme": "S", "start": 0.2, "end": 0.3}, {"phoneme": "'i:", "start": 0.3, "end": 0.5},
           {"phoneme": "p", "start": 0.5, "end": 0.6}]
    words = [{"word": "SHEEP", "start": 0.2, "end": 0.6}]
    a = FaceAnimator(seed=1).animate("FaceTalk_170725_00137_TA", "x", ali, words, 0.9, 54, 60)[0]
    b = FaceAnimator(seed=1).animate("FaceTalk_170725_00137_TA", "x", ali, words, 0.9, 54, 60)[0]
    c = FaceAnimator(seed=2).animate("FaceTalk_170725_00137_TA", "x", ali, words, 0.9, 54, 60)[0]
    assert a.dtype == np.float32 and a.shape == (54, build_topology().num_vertices, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-5


def test_upper_face_moves():
    anim = FaceAnimator(seed=0)
    topo = anim.topo
    ali = [{"phoneme": "@", "start": 0.2 + 0.1 * i, "end": 0.3 + 0.1 * i} for i in range(40)]
    words = [{"word": "W", "start": 0.2 + 0.5 * i, "end": 0.6 + 0.5 * i} for i in range(8)]
    v, _ = anim.animate("FaceTalk_170728_03272_TA", "long", ali, words, 4.5, 270, 60)
    motion = v - anim.template("FaceTalk_170728_03272_TA")[None]
    upper = topo.upper_face_region
    std = (np.linalg.norm(motion[:, upper], axis=-1) ** 2).std(0).mean()
    assert std > 1e-8  # FDD has something to measure
    # blinks: the upper lid comes down at some point
    lid = topo.groups["lid_upper_r"][2]
    assert v[:, lid, 1].max() - v[:, lid, 1].min() > 0.004


# ------------------------------------------------------------------------------------------------
# regions


def test_region_files_accept_both_separators(tmp_path):
    write_region(tmp_path / "a.txt", [3, 1, 2], sep=", ")
    write_region(tmp_path / "b.txt", [3, 1, 2], sep=",")
    assert (tmp_path / "a.txt").read_text().strip() == "3, 1, 2"
    assert (tmp_path / "b.txt").read_text().strip() == "3,1,2"
    (tmp_path / "c.txt").write_text("3,\n1, 2,\n")
    for name in ("a.txt", "b.txt", "c.txt"):
        assert read_region(tmp_path / name).tolist() == [3, 1, 2]


# ------------------------------------------------------------------------------------------------
# corpus handling


def test_corpus_without_sidecars_is_a_clear_error(tmp_path):
    lib = make_corpus(tmp_path, per_speaker=1, sidecars=False)
    with pytest.raises(CorpusError, match="alignment.jsonl"):
        load_corpus(lib)
    assert main(["--corpus", str(lib), "--output_dir", str(tmp_path / "o"), "--quiet"]) == 2


def test_corpus_loading(corpus):
    utts = load_corpus(corpus.parent)  # the parent of LibriSpeech/ works too
    assert {u.split for u in utts} == {"train-clean-100", "dev-clean", "test-clean"}
    assert all(u.phonemes and u.audio_path.exists() for u in utts)


def test_plan_uses_held_out_splits_for_val_and_test(corpus):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_sequences(get_spec("vocaset"), load_corpus(corpus))
    assert len(plan) == 8 * 40 + 4 * 20
    for a in plan:
        expected = {"train": "train-clean-100", "val": "dev-clean", "test": "test-clean"}[a.slot.role]
        assert a.pool == expected
    # the reduced plan is a subset of the full one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = plan_sequences(get_spec("vocaset"), load_corpus(corpus), max_sentences={"train": 2, "test": 1})
    assert sum(a.slot.role == "val" for a in small) == 2 * 20  # roles without a limit are complete
    assert sum(a.slot.role == "test" for a in small) == 2
    full = {a.name: a.utterance.id for a in plan}
    assert all(full[a.name] == a.utterance.id for a in small)


# ------------------------------------------------------------------------------------------------
# generated layouts


def _check_layout(out: Path, fps: int, pattern: str, stems_expected: set[str] | None = None):
    wavs = sorted((out / "wav").glob("*.wav"))
    npys = sorted((out / "vertices_npy").glob("*.npy"))
    assert wavs and {p.stem for p in wavs} == {p.stem for p in npys}
    if stems_expected is not None:
        assert {p.stem for p in wavs} == stems_expected
    with open(out / "templates.pkl", "rb") as f:
        templates = pickle.load(f, encoding="latin1")
    info = json.loads((out / "info.json").read_text())
    V = info["num_vertices"]
    for w in wavs:
        assert re.fullmatch(pattern, w.stem), w.stem
        audio, sr = sf.read(str(w))
        assert sr == 16000 and audio.ndim == 1
        assert sf.info(str(w)).subtype == "PCM_16"
        v = np.load(out / "vertices_npy" / f"{w.stem}.npy")
        assert v.dtype == np.float32 and v.ndim == 2 and v.shape[1] == V * 3
        assert v.shape[0] == int(round(len(audio) / sr * fps))
        subject = "_".join(w.stem.split("_")[:-1])
        tpl = np.asarray(templates[subject])
        assert tpl.shape == (V, 3)
        # vertices stay near the template (metres: millimetre-scale motion)
        assert np.abs(v.reshape(len(v), V, 3) - tpl[None]).max() < 0.03
    lips = read_region(out / "regions" / "lip_vertices.txt")
    upper = read_region(out / "regions" / "upper_face_vertices.txt")
    assert ", " in (out / "regions" / "lip_vertices.txt").read_text()
    assert ", " not in (out / "regions" / "upper_face_vertices.txt").read_text()
    assert len(lips) > 10 and len(upper) > 10 and not set(lips) & set(upper)
    assert lips.max() < V and upper.max() < V
    return templates, info


def test_vocaset_layout(vocaset):
    out, info = vocaset
    stems = {f"{s}_sentence01" for s in VOCASET_SUBJECTS["train"]}
    stems |= {f"{s}_sentence21" for r in ("val", "test") for s in VOCASET_SUBJECTS[r]}
    templates, info = _check_layout(out, 60, r"FaceTalk_\d{6}_\d{5}_TA_sentence\d\d", stems)
    assert set(templates) == {s for v in VOCASET_SUBJECTS.values() for s in v}
    assert info["fps"] == 60
    man = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {m["source_split"] for m in man if m["split"] == "test"} == {"test-clean"}
    assert (out / "mesh.obj").read_text().count("\nf ") > 100
    # mouth parameters saved on request, one row per frame
    mp = np.load(out / "mouth_params" / "FaceTalk_170809_00138_TA_sentence21.npy")
    assert mp.shape[0] == np.load(out / "vertices_npy" / "FaceTalk_170809_00138_TA_sentence21.npy").shape[0]
    # different subjects have different faces
    t = list(templates.values())
    assert np.abs(t[0] - t[1]).max() > 1e-3


def test_biwi_layout(biwi):
    out, info = biwi
    stems = {f"{s}_e{n:02d}" for s in ("F2", "M3") for n in (1, 33, 37)}
    templates, info = _check_layout(out, 25, r"[FM]\d_e\d\d", stems)
    assert set(templates) == set(BIWI_SUBJECTS)
    assert info["fps"] == 25
    # A reduced-size mesh of its own (BIWI's is 23,370 vertices): another mesh type than the VOCASET layout's.
    assert info["num_vertices"] == build_topology(GRID_STEPS["biwi"]).num_vertices == 318
    assert build_topology(GRID_STEPS["vocaset"]).num_vertices == 270


def test_generation_is_deterministic(corpus, vocaset, tmp_path):
    out, _ = vocaset
    again = tmp_path / "again"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generate(corpus, again, fmt="vocaset", seed=3, max_sentences=1, subjects=["FaceTalk_170809_00138_TA"],
                 progress=False, preview=False)
    name = "FaceTalk_170809_00138_TA_sentence21.npy"
    np.testing.assert_array_equal(np.load(out / "vertices_npy" / name), np.load(again / "vertices_npy" / name))
    with open(out / "templates.pkl", "rb") as f1, open(again / "templates.pkl", "rb") as f2:
        a, b = pickle.load(f1, encoding="latin1"), pickle.load(f2, encoding="latin1")
    np.testing.assert_array_equal(a["FaceTalk_170809_00138_TA"], b["FaceTalk_170809_00138_TA"])


def test_refuses_to_overwrite(corpus, vocaset):
    out, _ = vocaset
    assert main(["--corpus", str(corpus), "--output_dir", str(out), "--quiet", "--max_sentences", "1"]) == 2


def test_old_flag_spellings_still_work_with_a_warning(corpus, tmp_path, capsys):
    argv = ["--corpus", str(corpus), "--out", str(tmp_path / "o"), "--quiet", "--max-sentences", "1", "--no-preview",
            "--subjects", "F2", "--format", "biwi"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    err = capsys.readouterr().err
    assert "--out is deprecated; use --output_dir" in err and "--max-sentences is deprecated" in err
    assert "--no-preview is deprecated; use --no_preview" in err
    info = json.loads((tmp_path / "o" / "info.json").read_text())
    assert info["sequences"] == 3 and not (tmp_path / "o" / "preview.png").exists()
    assert "--output_dir" in info["command"] and "--out " not in info["command"]  # recorded in the new dialect
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "--output_dir" in help_text and "--max_sentences" in help_text and "--out " not in help_text


def test_preview_png(corpus, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generate(corpus, tmp_path / "p", fmt="vocaset", max_sentences=1,
                 subjects=["FaceTalk_170809_00138_TA", "FaceTalk_170728_03272_TA"], progress=False)
    png = tmp_path / "p" / "preview.png"
    assert png.exists() and png.stat().st_size > 10_000


# ------------------------------------------------------------------------------------------------
# the committed sample


@pytest.mark.skipif(not (COMMITTED / "info.json").exists(), reason="committed VOCASET sample not generated yet")
def test_committed_vocaset_sample():
    templates, info = _check_layout(COMMITTED, 60, r"FaceTalk_\d{6}_\d{5}_TA_sentence\d\d")
    assert set(templates) == {s for v in VOCASET_SUBJECTS.values() for s in v}
    man = [json.loads(line) for line in (COMMITTED / "manifest.jsonl").read_text().splitlines()]
    for m in man:
        role = next(r for r, subs in VOCASET_SUBJECTS.items() if m["subject"] in subs)
        assert m["split"] == role
        assert m["sentence"] in VOCASET_SENTENCES[role]
        assert m["source_split"] == {"train": "train-clean-100", "val": "dev-clean", "test": "test-clean"}[role]
    assert {m["subject"] for m in man} == set(templates)
    assert (COMMITTED / "preview.png").exists()
    size = sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file())
    assert size < 8.5e6


@pytest.mark.skipif(not (COMMITTED_BIWI / "info.json").exists(), reason="committed BIWI sample not generated yet")
def test_committed_biwi_sample():
    templates, info = _check_layout(COMMITTED_BIWI, 25, r"[FM]\d_e\d\d")
    assert set(templates) == set(BIWI_SUBJECTS) and info["num_vertices"] == 318
    man = [json.loads(line) for line in (COMMITTED_BIWI / "manifest.jsonl").read_text().splitlines()]
    assert {(m["split"], m["sentence"]) for m in man} == {("train", 1), ("val", 33), ("test", 37)}
    assert {m["subject"] for m in man} == set(BIWI_SPLIT_SUBJECTS)
    assert {m["source_split"] for m in man if m["split"] == "test"} == {"test-clean"}
    size = sum(p.stat().st_size for p in COMMITTED_BIWI.rglob("*") if p.is_file())
    assert size < 6.5e6


def test_split_conventions():
    spec = get_spec("vocaset")
    assert spec.split_of("FaceTalk_170728_03272_TA", 1) == "train"
    assert spec.split_of("FaceTalk_170811_03275_TA", 21) == "val"
    assert spec.split_of("FaceTalk_170811_03275_TA", 20) is None
    assert spec.split_of("FaceTalk_170731_00024_TA", 40) == "test"
    b = get_spec("biwi")
    assert [b.split_of("F2", n) for n in (1, 32, 33, 36, 37, 40)] == ["train", "train", "val", "val", "test", "test"]
    assert set(BIWI_SPLIT_SUBJECTS) == {"F2", "F3", "F4", "M3", "M4", "M5"}
    assert BIWI_SENTENCES["train"] == range(1, 33)
