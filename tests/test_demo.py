"""The demo page (`app.py`) in a real browser: the app is started in a subprocess on 127.0.0.1 (a free port, a fresh
cache, so its first start trains its tiny models), headless Chromium uploads a wav, both videos must arrive and play,
the served MP4s are read back with PyAV (duration, frames, an audio stream), a screenshot must show two rendered
faces; a recording from Chromium's fake microphone is animated too, and a silent upload is refused with a clear
message.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them) and the `demo`/`dev` extras (gradio, av,
selenium); skips, saying which is missing, otherwise.

    WAV2SEM_DEMO_AUDIO=speech.wav WAV2SEM_DEMO_SCREENSHOT=shot.png python -m pytest -s tests/test_demo.py

uploads another file and saves the screenshot; the upload-to-videos latency is printed (`-s`).
"""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SAMPLE_WAV = REPO / "training" / "sample_data" / "vocaset" / "wav" / "FaceTalk_170725_00137_TA_sentence01.wav"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
START_TIMEOUT, ANIMATE_TIMEOUT = 240, 120

pytest.importorskip("gradio", reason="the demo needs gradio: pip install -e '.[demo]'")
av = pytest.importorskip("av", reason="the demo needs PyAV: pip install -e '.[demo]'")
sys.path.insert(0, str(REPO))
import app as demo_app  # noqa: E402

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    webdriver = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory, browser):
    root = tmp_path_factory.mktemp("demo")
    port = free_port()
    log = open(root / "app.log", "w")
    # one torch thread unless told otherwise: the first start's training must not fight other work for the cores
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "TMPDIR": str(root), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--cache_dir", str(root / "cache"), "--host", "127.0.0.1",
         "--port", str(port), "--train_steps", "2"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + START_TIMEOUT
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{(root / 'app.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"app.py did not serve within {START_TIMEOUT} s:\n{(root / 'app.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "root": root, "log": root / "app.log"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if webdriver is None:
        pytest.skip("the browser test needs selenium: pip install -e '.[dev]'")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("headless Chromium and its driver are missing (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--mute-audio",
                 "--window-size=1400,1100", "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):  # a microphone that beeps
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def upload(driver, path: Path):
    field = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#speech input[type=file]"))
    field.send_keys(str(path))
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#speech audio, #speech wave, "
                                                                             "#speech [data-testid=waveform-Speech]"))


def video_sources(driver) -> list[str]:
    sources = []
    for box in ("baseline-video", "wav2sem-video"):
        found = driver.find_elements(By.CSS_SELECTOR, f"#{box} video")
        sources.append(found[0].get_attribute("src") if found and found[0].get_attribute("src") else None)
    return sources


def read_mp4(data: bytes) -> dict:
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "rate": float(video.average_rate),
            "frames": frames,
            "seconds": frames / float(video.average_rate),
            "audio_seconds": float(audio[0].duration * audio[0].time_base) if audio else None,
        }


def lit_fraction(png: bytes) -> float:
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)
    return float(((image @ [0.299, 0.587, 0.114]) > 110).mean())


def test_upload_gives_two_playing_videos_with_sound(app, browser, tmp_path):
    speech = Path(os.environ.get("WAV2SEM_DEMO_AUDIO", SAMPLE_WAV))
    seconds = sf.info(str(speech)).duration
    browser.get(app["url"])
    uploading = time.time()
    upload(browser, speech)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "animate").is_enabled())
    started = time.time()
    browser.find_element(By.ID, "animate").click()
    WebDriverWait(browser, ANIMATE_TIMEOUT).until(lambda d: all(video_sources(d)))
    done = time.time()
    print(f"\n{seconds:.2f} s of speech: both videos {done - started:.1f} s after Animate was clicked, "
          f"{done - uploading:.1f} s after the upload began")

    # both play in the browser: metadata and a decoded frame, and time advances when played
    for box in ("baseline-video", "wav2sem-video"):
        element = browser.find_element(By.CSS_SELECTOR, f"#{box} video")
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return arguments[0].readyState", element) >= 2)
        assert browser.execute_script("return arguments[0].error", element) is None
        assert browser.execute_script("return arguments[0].duration", element) == pytest.approx(seconds, abs=0.25)
        assert browser.execute_script("return arguments[0].videoWidth", element) > 100
        browser.execute_script("arguments[0].muted = true; arguments[0].play();", element)
    WebDriverWait(browser, 20).until(lambda d: all(
        d.execute_script("return arguments[0].currentTime", e) > 0.3
        for e in d.find_elements(By.CSS_SELECTOR, "#baseline-video video, #wav2sem-video video")
    ))
    for element in browser.find_elements(By.CSS_SELECTOR, "#baseline-video video, #wav2sem-video video"):
        browser.execute_script("arguments[0].pause(); arguments[0].currentTime = 0.5;", element)

    # the served files: H.264 at the model's frame rate, as long as the speech, with the speech as an audio track
    for source in video_sources(browser):
        with urllib.request.urlopen(source, timeout=30) as response:
            info = read_mp4(response.read())
        assert info["rate"] in (25.0, 30.0, 60.0)
        assert info["frames"] == pytest.approx(seconds * info["rate"], abs=0.1 * info["rate"])
        assert info["audio_seconds"] == pytest.approx(seconds, abs=0.1)

    # the vertices can be downloaded
    links = WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#vertices a"))
    assert sum(".npy" in (link.get_attribute("href") or "") for link in links) >= 2

    # two rendered faces on screen: lit pixels in each video box
    time.sleep(0.5)
    for box in ("baseline-video", "wav2sem-video"):
        assert lit_fraction(browser.find_element(By.CSS_SELECTOR, f"#{box} video").screenshot_as_png) > 0.05
    shot = Path(os.environ.get("WAV2SEM_DEMO_SCREENSHOT", tmp_path / "demo.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))
    from PIL import Image

    page = np.asarray(Image.open(shot).convert("RGB"))
    left, right = page[:, : page.shape[1] // 2], page[:, page.shape[1] // 2:]
    assert lit_fraction(_png(left)) > 0.0 and lit_fraction(_png(right)) > 0.0


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_recording_from_the_microphone(app, browser):
    """Chromium's fake microphone (a beep) recorded for ~2 s through the page's recorder, then animated."""
    browser.get(app["url"])
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#speech button[aria-label='Record audio']"))[0].click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, "#speech .record-button")).click()
    time.sleep(2.0)
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, "#speech .stop-button")).click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#speech audio, #speech wave, "
                                                                             "#speech [data-testid=waveform-Speech]"))
    time.sleep(1.0)
    browser.find_element(By.ID, "animate").click()
    WebDriverWait(browser, ANIMATE_TIMEOUT).until(lambda d: all(video_sources(d)))
    for source in video_sources(browser):
        with urllib.request.urlopen(source, timeout=30) as response:
            info = read_mp4(response.read())
        assert 1.0 < info["seconds"] < 5.0 and info["audio_seconds"] > 1.0


def test_silent_upload_is_refused_clearly(app, browser, tmp_path):
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(32000, dtype=np.float32), 16000)
    browser.get(app["url"])
    upload(browser, silent)
    browser.find_element(By.ID, "animate").click()
    WebDriverWait(browser, 60).until(lambda d: "is silent" in d.find_element(By.TAG_NAME, "body").text)
    assert not any(video_sources(browser))


# ---------------------------------------------------------------------------------------------------------------------
# Without a browser: inputs and the model cache
# ---------------------------------------------------------------------------------------------------------------------


def test_unusable_inputs_are_refused_with_the_reason(tmp_path):
    rate = 16000
    speech = (0.1 * np.sin(2 * np.pi * 200 * np.arange(rate * 2) / rate)).astype(np.float32)
    cases = {
        "short.wav": (speech[: rate // 5], "too short"),
        "long.wav": (np.tile(speech, 11), "too long"),
        "silence.wav": (np.zeros(rate * 2, np.float32), "is silent"),
    }
    for name, (samples, message) in cases.items():
        sf.write(tmp_path / name, samples, rate)
        with pytest.raises(demo_app.UnusableInput, match=message):
            demo_app.read_speech(str(tmp_path / name))
    (tmp_path / "notes.wav").write_text("not audio at all")
    with pytest.raises(demo_app.UnusableInput, match="not an audio file"):
        demo_app.read_speech(str(tmp_path / "notes.wav"))
    with pytest.raises(demo_app.UnusableInput, match="No speech"):
        demo_app.read_speech(None)
    sf.write(tmp_path / "ok.flac", speech, 44100)  # another rate: resampled to 16 kHz
    assert len(demo_app.read_speech(str(tmp_path / "ok.flac"))) == pytest.approx(len(speech) * 16000 / 44100, abs=2)


def test_browser_recordings_decode_through_ffmpeg(tmp_path):
    """A WebM/Opus file (what browsers record) is not readable by soundfile; PyAV decodes it."""
    path = tmp_path / "recording.webm"
    samples = (0.2 * np.sin(2 * np.pi * 300 * np.arange(48000) / 48000)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        for start in range(0, len(samples), 960):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 960], format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    decoded = demo_app.read_speech(str(path))
    assert len(decoded) == pytest.approx(16000, abs=400)
    assert np.sqrt(np.mean(decoded ** 2)) == pytest.approx(0.2 / np.sqrt(2), rel=0.2)


def test_models_are_trained_once_then_loaded_from_the_cache(tmp_path, monkeypatch):
    from training import train_animation
    from training.animation.recipes import ANIMATION_RECIPES

    folders = demo_app.ensure_models(tmp_path, train_steps=1, say=lambda message: None)
    assert set(folders) == set(ANIMATION_RECIPES)
    assert list(folders)[0] == "faceformer"  # the page's default
    for variants in folders.values():
        assert set(variants) == {"baseline", "wav2sem"}
        for folder in variants.values():
            assert (folder / "demo_ready.json").is_file() and (folder / "mesh.obj").is_file()
            assert not (folder / "checkpoints").exists()
    for name, overrides in demo_app.DEMO_OVERRIDES.items():  # the demo's smaller configs reach the trained models
        config = json.loads((folders[name]["wav2sem"] / "config.json").read_text())
        for key, value in overrides.items():
            assert config[key] == value if key != "vqvae_config" else config[key].items() >= value.items(), (name, key)
    monkeypatch.setattr(train_animation, "main", lambda argv: pytest.fail("trained again"))
    started = time.time()
    assert demo_app.ensure_models(tmp_path, train_steps=1, say=lambda message: None) == folders
    assert time.time() - started < 5
    demo = demo_app.Demo({"faceformer": folders["faceformer"]}, tmp_path / "out", video_height=120)
    sf.write(tmp_path / "speech.wav", sf.read(SAMPLE_WAV)[0], 16000)
    baseline, wav2sem, files, summary = demo.animate(str(tmp_path / "speech.wav"), "FaceFormer",
                                                     demo.styles("FaceFormer")[0])
    assert Path(baseline).is_file() and Path(wav2sem).is_file() and len(files) == 2
    assert np.load(files[0]).shape == np.load(files[1]).shape and "30 fps" in summary
    with pytest.raises(demo_app.UnusableInput, match="Unknown speaking style"):
        demo.animate(str(tmp_path / "speech.wav"), "FaceFormer", "nobody")


def test_a_page_of_some_models_trains_only_those(tmp_path):
    """`ensure_models(names=...)` (the latency benchmark's `--models`) builds just those; an unknown name is refused."""
    with pytest.raises(ValueError, match="No animation model nothing"):
        demo_app.ensure_models(tmp_path, train_steps=1, say=lambda message: None, names=["voca", "nothing"])
    folders = demo_app.ensure_models(tmp_path, train_steps=1, say=lambda message: None, names=["voca"])
    assert list(folders) == ["voca"]
    assert sorted(p.name for p in demo_app.model_root(tmp_path, 1).iterdir() if p.name != "encoders") == [
        "voca-baseline", "voca-wav2sem"]
