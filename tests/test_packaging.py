"""The wheel built from the repository: package-specific top-level names only, and what a model card tells a user to
run works after a plain (non-editable) install, from a folder outside the checkout.

The working tree (tracked and untracked, not ignored) is copied and built with `pip wheel --no-build-isolation`, so
no network is needed; the wheel goes into a fresh `venv --system-site-packages` (torch and the rest come from this
interpreter) and is used from there: a console script trains a tiny VOCA on the sample data shipped in the wheel and
writes its card from the shipped template, and the card's `wav2sem-animate` command is run as written.
"""

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
# The checkout's packages and where the wheel puts them (setup.cfg's package_dir).
INSTALLED_NAMES = {"modeling_wav2sem": "modeling_wav2sem", "training": "wav2sem_training"}
CONSOLE_SCRIPTS = ("wav2sem-pretrain", "wav2sem-train-animation", "wav2sem-animate", "wav2sem-analyze-homophones",
                   "wav2sem-make-sample-corpus", "wav2sem-make-sample-faces")


def copy_working_tree(destination: Path) -> None:
    """The files git would commit (tracked, and untracked but not ignored) copied to `destination`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is left out, as a build would
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def checkout_packages() -> dict[str, str]:
    """{checkout package folder: its installed dotted name} for every folder with an `__init__.py`."""
    packages = {}
    for top, installed in INSTALLED_NAMES.items():
        for init in (REPO / top).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / top).parts
            packages[str(init.parent.relative_to(REPO))] = ".".join((installed, *relative))
    return packages


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed: building the wheel offline (--no-build-isolation) needs it")
    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None and importlib.util.find_spec("wheel") is None:
        pytest.skip("neither setuptools >= 70.1 nor the wheel package: no bdist_wheel to build the wheel offline")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the files a build takes are listed with git")
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    copy_working_tree(source)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(source)], capture_output=True, text=True,
                           env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("wav2sem-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], check=True)
    # This interpreter's pip, run by the venv's python, installs into the venv; --force-reinstall puts the wheel
    # there even when this interpreter has the package (e.g. editable): that copy stays, shadowed by the venv's.
    install = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                              "--force-reinstall", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    return root


def run_in(venv: Path, cwd: Path, *command: str) -> subprocess.CompletedProcess:
    """`command` with the venv's bin/ first on PATH, in `cwd` (outside the checkout), one thread, offline."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", MPLBACKEND="Agg")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_wheel_installs_only_package_specific_names_with_every_package_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"modeling_wav2sem", "wav2sem_training", "wav2sem-0.1.0.dist-info"}
    for folder, dotted in checkout_packages().items():  # a new package folder must be added to setup.cfg
        assert dotted.replace(".", "/") + "/__init__.py" in names, f"{folder} is not in the wheel"
    templates = sorted(path.name for path in (REPO / "model_cards").glob("*.md"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("wav2sem_training/model_cards/")) == templates
    sample = [p for p in (REPO / "training" / "sample_data").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(n.startswith("wav2sem_training/sample_data/") for n in names) == len(sample) > 0
    entry_points = zipfile.ZipFile(wheel).read("wav2sem-0.1.0.dist-info/entry_points.txt").decode()
    assert all(f"{script} = wav2sem_training." in entry_points for script in CONSOLE_SCRIPTS)
    # No installed module imports the checkout-only name, not even lazily inside a function.
    absolute = re.compile(r"^\s*(from|import)\s+training\b", re.MULTILINE)
    offenders = [n for n in names if n.endswith(".py") and absolute.search(zipfile.ZipFile(wheel).read(n).decode())]
    assert offenders == []


def test_installed_package_trains_writes_its_card_and_the_cards_command_runs(venv, tmp_path):
    bin_dir = venv / "bin"
    assert all((bin_dir / script).is_file() for script in CONSOLE_SCRIPTS)
    # Every entry module imports from the install, with the checkout's name unimportable.
    check = run_in(venv, tmp_path, str(bin_dir / "python"), "-c", (
        "import sys; sys.modules['training'] = None\n"
        "import modeling_wav2sem, wav2sem_training\n"
        "from wav2sem_training import animate, analyze_homophones, make_sample_corpus, make_sample_faces, pretrain, "
        "train_animation\n"
        "from wav2sem_training.common.hub import TEMPLATES_DIR\n"
        "print(modeling_wav2sem.__file__, wav2sem_training.__file__, TEMPLATES_DIR)\n"
        "import torch; from transformers import AutoModel, HubertConfig\n"
        "torch.manual_seed(0)\n"
        "AutoModel.from_config(HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, "
        "intermediate_size=37, conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, "
        "layerdrop=0.0, mask_time_prob=0.0)).save_pretrained('hubert')\n"))
    assert all(path.startswith(str(venv)) for path in check.stdout.split()), check.stdout

    run_in(venv, tmp_path, "wav2sem-train-animation", "--model", "voca", "--audio_encoder", "hubert",
           "--output_dir", "voca-sample", "--max_train_steps", "1", "--max_test_sequences", "1",
           "--eval_conditions", "first", "--render_frames", "0", "--render_gif", "false", "--render_video", "false",
           "--cpu_threads", "1")
    card = (tmp_path / "voca-sample" / "README.md").read_text()
    assert "model-index" in card and "python -m training" not in card
    assert "- Command: `wav2sem-train-animation --model voca --dataset vocaset" in card
    (command,) = [line for line in card.splitlines() if line.startswith("wav2sem-animate ")]
    assert "--model_name_or_path voca-sample" in command and "--output_dir out/" in command

    wav = next((venv / "lib").glob("python*/site-packages/wav2sem_training/sample_data/vocaset/wav/*.wav"))
    shutil.copyfile(wav, tmp_path / "speech.wav")
    printed = run_in(venv, tmp_path, *shlex.split(command)).stdout
    (written,) = (tmp_path / "out").glob("speech_*.npy")
    assert f"{len(np.load(written))} frames at 60 fps" in printed and str(written.relative_to(tmp_path)) in printed
