"""Fetch transformers' own common model tests and make them importable.

`ModelTesterMixin` (tests/test_modeling_common.py) and `ConfigTester` (tests/test_configuration_common.py) ship in
the source distribution of transformers on PyPI, not in the wheel. `load_common_tests()` downloads the sdist of the
installed version once into `<repo>/.cache/transformers-sdist/` (ignored by git), extracts those two files, and
imports them under the package name `hf_common_tests`, which cannot clash with this repository's own `tests` folder
(nor with the `tests.*` module names pytest derives from the rootdir).

The sdist ships only the top-level `tests/*.py` files, not the sub-packages they import from; those imports are
satisfied by the small stand-ins below (see `_install_stand_ins`), so what runs is exactly the sdist's
`ModelTesterMixin` and `ConfigTester`, minus the torch.export / ONNX tests of the absent `ExportTesterMixin` (for
which tests/test_transformers_common.py has a small `test_torch_export` of its own).

`parameterized` (a test-only dependency of test_modeling_common.py) is used when installed; otherwise its pure-Python
wheel is fetched into the same cache and put on `sys.path`.

When PyPI cannot be reached, `load_common_tests()` raises `CommonTestsUnavailable`; the test module turns it into a
module-level `pytest.skip` with the reason.
"""

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import types
import warnings
from pathlib import Path

import transformers

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "transformers-sdist"
PACKAGE = "hf_common_tests"
# The files taken from the sdist's tests/ folder.
NEEDED_FILES = ("test_modeling_common.py", "test_configuration_common.py")
PIP_TIMEOUT_S = 300
PARAMETERIZED_REQUIREMENT = "parameterized>=0.9"


class CommonTestsUnavailable(RuntimeError):
    """The common tests could not be fetched (no network, PyPI down, unexpected sdist layout)."""


def _pip_download(args: list[str], dest: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    command += ["-d", str(dest)]
    try:
        result = subprocess.run(command + args, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise CommonTestsUnavailable(f"`pip download {' '.join(args)}` timed out after {PIP_TIMEOUT_S} s") from error
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise CommonTestsUnavailable(f"`pip download {' '.join(args)}` failed: {' | '.join(tail)}")


def _is_complete(tests_dir: Path) -> bool:
    return all((tests_dir / name).is_file() for name in (*NEEDED_FILES, "__init__.py"))


def _fetch_sdist_tests(version: str) -> Path:
    """Return `<cache>/transformers-<version>/tests`, downloading and extracting the sdist first if needed."""
    tests_dir = CACHE_DIR / f"transformers-{version}" / "tests"
    if _is_complete(tests_dir):
        return tests_dir
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # Download and extract in a scratch folder, then move into place in one rename: concurrent runs can't see half.
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch:
        scratch = Path(scratch)
        _pip_download(["--no-binary", ":all:", f"transformers=={version}"], scratch)
        archives = list(scratch.glob("transformers-*.tar.gz"))
        if not archives:
            raise CommonTestsUnavailable(f"pip downloaded no transformers-{version} sdist")
        download_s = time.perf_counter() - start
        staged = scratch / "staged" / "tests"
        staged.mkdir(parents=True)
        with tarfile.open(archives[0]) as archive:
            for name in NEEDED_FILES:
                try:
                    member = archive.extractfile(f"transformers-{version}/tests/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise CommonTestsUnavailable(f"the transformers-{version} sdist has no tests/{name}")
                (staged / name).write_bytes(member.read())
        # `test_configuration_common` runs `direct_transformers_import(<its folder>)`, which executes `__init__.py`.
        (staged / "__init__.py").write_text("")
        total_s = time.perf_counter() - start
        report = {"version": version, "download_s": round(download_s, 2), "total_s": round(total_s, 2)}
        (staged.parent / "fetch.json").write_text(json.dumps(report))
        target = tests_dir.parent
        if not _is_complete(tests_dir):
            shutil.rmtree(target, ignore_errors=True)  # a stale or partial copy
            try:
                os.replace(staged.parent, target)
            except OSError:
                if not _is_complete(tests_dir):  # fine only if a concurrent run put a complete copy there first
                    raise
    return tests_dir


def _ensure_parameterized() -> None:
    if importlib.util.find_spec("parameterized") is not None:
        return
    wheel_dir = CACHE_DIR / "wheels"
    wheels = sorted(wheel_dir.glob("parameterized-*.whl"))
    if not wheels:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch:
            _pip_download(["--only-binary", ":all:", PARAMETERIZED_REQUIREMENT], Path(scratch))
            for wheel in Path(scratch).glob("parameterized-*.whl"):
                os.replace(wheel, wheel_dir / wheel.name)  # whole files only, for concurrent runs
        wheels = sorted(wheel_dir.glob("parameterized-*.whl"))
        if not wheels:
            raise CommonTestsUnavailable("pip downloaded no parameterized wheel")
    sys.path.append(str(wheels[-1]))  # a pure-Python wheel imports straight from the zip


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def _install_stand_ins(tests_dir: Path) -> None:
    """Register the package and stand-ins for the sub-modules the sdist omits but the two files import."""
    package = _module(PACKAGE, __path__=[str(tests_dir)], __file__=str(tests_dir / "__init__.py"))
    package.__package__ = PACKAGE

    class ExportTesterMixin:
        """Stand-in for tests/exporters/test_export.py (not in the sdist): contributes no tests."""

    class GenerationTesterMixin:
        """Stand-in for tests/generation/test_utils.py (not in the sdist). Only used in an `issubclass` check that
        asserts generative models inherit it; our encoders can't generate, so they must not."""

    # Non-default values for every field of `PreTrainedConfig`, for `ConfigTester.check_config_arguments_init`
    # (the sdist omits tests/utils/test_configuration_utils.py, which defines this dict).
    config_common_kwargs = {
        "return_dict": False,
        "output_hidden_states": True,
        "dtype": "float16",
        "chunk_size_feed_forward": 5,
        "is_encoder_decoder": True,
        "architectures": ["BertModel"],
        "id2label": {0: "label"},
        "label2id": {"label": "0"},
        "problem_type": "regression",
    }
    for sub, attributes in (
        ("exporters", {"test_export": {"ExportTesterMixin": ExportTesterMixin}}),
        ("generation", {"test_utils": {"GenerationTesterMixin": GenerationTesterMixin}}),
        ("utils", {"test_configuration_utils": {"config_common_kwargs": config_common_kwargs}}),
    ):
        parent = _module(f"{PACKAGE}.{sub}", __path__=[])
        setattr(package, sub, parent)
        for leaf, names in attributes.items():
            setattr(parent, leaf, _module(f"{PACKAGE}.{sub}.{leaf}", **names))


def load_common_tests() -> tuple[types.ModuleType, types.ModuleType]:
    """Return the sdist's `(test_modeling_common, test_configuration_common)` modules, fetching them if needed.

    Raises:
        CommonTestsUnavailable: when the sdist or `parameterized` cannot be downloaded.
    """
    if f"{PACKAGE}.test_modeling_common" in sys.modules:
        return sys.modules[f"{PACKAGE}.test_modeling_common"], sys.modules[f"{PACKAGE}.test_configuration_common"]
    tests_dir = _fetch_sdist_tests(transformers.__version__)
    _ensure_parameterized()
    _install_stand_ins(tests_dir)
    with warnings.catch_warnings():
        # Their decorators use transformers' own pytest marks (flash_attn_test, ...), registered in its conftest only.
        warnings.filterwarnings("ignore", message="Unknown pytest.mark")
        modeling_common = importlib.import_module(f"{PACKAGE}.test_modeling_common")
        configuration_common = importlib.import_module(f"{PACKAGE}.test_configuration_common")
    return modeling_common, configuration_common


def fetch_report() -> dict | None:
    """Timings of the last download (`download_s`, `total_s`), or `None` if it has not been fetched here."""
    report = CACHE_DIR / f"transformers-{transformers.__version__}" / "fetch.json"
    return json.loads(report.read_text()) if report.is_file() else None
