"""Model cards from the templates in `model_cards/` and uploads to the Hugging Face Hub."""

import os
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData, get_token


def _templates_dir() -> Path:
    """`model_cards/`: package data beside this package when installed (`wav2sem_training/model_cards/`, see
    setup.cfg), the folder at the repository root in a checkout."""
    package = Path(__file__).resolve().parents[1]
    installed, checkout = package / "model_cards", package.parent / "model_cards"
    return installed if installed.is_dir() else checkout


TEMPLATES_DIR = _templates_dir()


def write_model_card(output_dir: str | os.PathLike, template: str, card_data: ModelCardData, **fields) -> ModelCard:
    """Render `model_cards/<template>.md` with `card_data` (front matter, model-index) and `fields`; save README.md."""
    path = TEMPLATES_DIR / f"{template}.md"
    if not path.is_file():
        raise FileNotFoundError(f"No model card template {path}.")
    card = ModelCard.from_template(card_data, template_path=str(path), **fields)
    card.save(Path(output_dir) / "README.md")
    return card


# Never uploaded: checkpoints, temporary folders and TensorBoard event files (whatever folder a tracker writes them to).
IGNORE_PATTERNS = ["checkpoints/*", "runs/*", "*.tmp", "*tfevents*"]


class HubUploadError(RuntimeError):
    """The upload could not be done; the local folder is untouched."""


def resolve_token(repo_id: str, token: str | None = None) -> str:
    """`token`, else the saved login or HF_TOKEN; raises `HubUploadError` when there is none. Training scripts call it
    at start-up with `--push_to_hub`, so a missing token fails before any data or training work."""
    token = token or get_token()
    if not token:
        raise HubUploadError(
            "No Hugging Face token: log in with `hf auth login`, set HF_TOKEN or pass --hub_token to push to "
            f"{repo_id}."
        )
    return token


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload model",
    ignore_patterns: list[str] | None = None,
) -> str:
    """Create `repo_id` if needed and upload `folder`, leaving out `IGNORE_PATTERNS` (checkpoints, logs) and
    `ignore_patterns` (e.g. a tracker's folder). Returns the commit URL.

    Raises `HubUploadError` with one clear message when there is no token or the Hub cannot be reached.
    """
    try:
        token = resolve_token(repo_id, token)
    except HubUploadError as error:
        raise HubUploadError(f"{error} The model is saved locally in {folder}.") from None
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            commit_message=commit_message,
            ignore_patterns=IGNORE_PATTERNS + list(ignore_patterns or []),
        )
    except Exception as error:  # network, auth and offline-mode errors all mean the same thing to the user
        raise HubUploadError(
            f"Could not upload {folder} to {repo_id}: {type(error).__name__}: {error}. The local folder is intact."
        ) from error
    return getattr(info, "commit_url", str(info))
