"""Crash-safe checkpoints for `accelerate` training: `Accelerator.save_state` into a temporary folder that is renamed
into place only once complete, a `latest` pointer replaced atomically, and pruning to the last K."""

import os
import re
import shutil
from pathlib import Path

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
LATEST_FILE = "latest"


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under `checkpoint_dir`, oldest first (temporary folders are ignored)."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_step(path: str | os.PathLike) -> int:
    """The optimisation step a checkpoint folder was saved at."""
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint folder (expected a name like checkpoint-1200).")
    return int(match.group(1))


def resolve_checkpoint(checkpoint_dir: str | os.PathLike, name_or_path: str) -> Path | None:
    """`"latest"` -> the newest complete checkpoint (or `None` when there is none yet); otherwise the given folder."""
    if name_or_path != "latest":
        path = Path(name_or_path)
        if not path.is_dir():
            raise FileNotFoundError(f"No checkpoint folder at {path}.")
        return path
    pointer = Path(checkpoint_dir) / LATEST_FILE
    if pointer.is_file():
        candidate = Path(checkpoint_dir) / pointer.read_text().strip()
        if candidate.is_dir():
            return candidate
    complete = list_checkpoints(checkpoint_dir)
    return complete[-1] if complete else None


def save_checkpoint(accelerator, checkpoint_dir: str | os.PathLike, step: int, keep_last: int | None) -> Path:
    """Save the full training state (model, optimizer, scheduler, sampler position, RNG states) at `step`.

    Every process must call it. A crash mid-write leaves only a `*.tmp` folder, never a corrupt "latest".
    """
    folder = Path(checkpoint_dir)
    final = folder / f"checkpoint-{step}"
    temporary = folder / f"checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        pointer_tmp = folder / f"{LATEST_FILE}.tmp"
        pointer_tmp.write_text(final.name)
        os.replace(pointer_tmp, folder / LATEST_FILE)
        if keep_last:
            for old in list_checkpoints(folder)[:-keep_last]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
