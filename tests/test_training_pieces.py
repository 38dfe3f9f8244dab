"""Pretraining building blocks: metrics and baselines, objectives, crash-safe checkpoints, model card and Hub push."""

import math
from unittest import mock

import pytest
import torch
from accelerate import Accelerator
from huggingface_hub import ModelCardData

from training.common import hub
from training.common.checkpoints import list_checkpoints, resolve_checkpoint, save_checkpoint
from training.evaluation import alignment_metrics, retrieval_recall
from training.objectives import infonce_loss, semantic_loss, target_statistics


def test_retrieval_recall_on_constructed_ranking():
    targets = torch.eye(4)
    # Item 0 finds its target first; item 1 ranks target 0 above its own (rank 2); items 2 and 3 are exact.
    predictions = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    recall = retrieval_recall(predictions, targets, ks=(1, 2))
    assert recall == {"r@1": 0.75, "r@2": 1.0}


def test_alignment_metrics_report_baselines():
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    metrics = alignment_metrics(targets.clone(), targets, mean_target=targets.mean(0))
    assert metrics["l1"] == 0 and metrics["cosine"] == pytest.approx(1.0) and metrics["r@1"] == 1.0
    assert metrics["mean_target_l1"] == pytest.approx(0.5)
    assert metrics["mean_target_cosine"] == pytest.approx(math.sqrt(0.5))
    assert metrics["chance_r@1"] == 0.5 and metrics["chance_r@5"] == 1.0


def test_semantic_loss_standardises_targets():
    targets = torch.tensor([[2.0, 10.0], [4.0, 30.0]])
    shift, scale = target_statistics(targets)
    torch.testing.assert_close(shift, torch.tensor([3.0, 20.0]))
    torch.testing.assert_close(scale, torch.tensor([1.0, 10.0]))
    perfect = (targets - shift) / scale
    assert semantic_loss(perfect, targets, shift, scale)["loss"] == 0
    # Plain L1 in the teacher's space when the statistics are the identity.
    plain = semantic_loss(torch.zeros(2, 2), targets, torch.zeros(2), torch.ones(2))
    assert plain["l1_standardized"] == pytest.approx(targets.abs().mean().item())


def test_infonce_prefers_matching_pairs():
    targets = torch.eye(3)
    assert infonce_loss(targets, targets, 0.1) < infonce_loss(targets.flip(0), targets, 0.1)
    losses = semantic_loss(targets, targets, torch.zeros(3), torch.ones(3), infonce_weight=0.5)
    assert losses["loss"] == pytest.approx(0.5 * losses["infonce"].item())


@pytest.fixture
def prepared():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    return accelerator, *accelerator.prepare(model, optimizer)


def test_checkpoints_are_atomic_and_pruned(prepared, tmp_path):
    accelerator, model, optimizer = prepared
    for step in (10, 20, 30):
        save_checkpoint(accelerator, tmp_path, step, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-20", "checkpoint-30"]
    assert resolve_checkpoint(tmp_path, "latest").name == "checkpoint-30"
    # A crash while writing step 40 leaves a temporary folder: "latest" still points at a complete checkpoint.
    (tmp_path / "checkpoint-40.tmp").mkdir()
    assert resolve_checkpoint(tmp_path, "latest").name == "checkpoint-30"
    # The state round-trips.
    saved = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    accelerator.load_state(str(resolve_checkpoint(tmp_path, "latest")))
    torch.testing.assert_close(model.weight.detach(), saved)


def test_resolve_latest_without_pointer_and_empty(tmp_path):
    assert resolve_checkpoint(tmp_path, "latest") is None
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-12").mkdir()
    assert resolve_checkpoint(tmp_path, "latest").name == "checkpoint-12"
    with pytest.raises(FileNotFoundError):
        resolve_checkpoint(tmp_path, str(tmp_path / "nope"))


def test_model_card_from_template(tmp_path):
    card = hub.write_model_card(
        tmp_path, "wav2sem", ModelCardData(license="apache-2.0", library_name="transformers"),
        model_name="wav2sem-c", repo_id="org/wav2sem-c", variant="c", variant_description="[CLS]", preset="small",
        embed_dim=384, teacher="minilm", data_description="sample", num_train=10, num_eval=5, skipped="{}",
        text_normalization="lowercased", objective="L1", optimisation="AdamW", hardware="1 x CPU", train_time="1 min",
        eval_split="dev-clean", notes="",
        metrics={"l1": 0.1, "mean_target_l1": 0.2, "cosine": 0.9, "mean_target_cosine": 0.8, "r@1": 0.5, "r@5": 0.9,
                 "chance_r@1": 0.2, "chance_r@5": 1.0},
    )
    text = (tmp_path / "README.md").read_text()
    assert "license: apache-2.0" in text and "| audio->text R@1 | 0.5000 |" in text
    assert card.data.library_name == "transformers"


def test_push_uploads_folder_with_mocked_api(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with mock.patch.object(hub, "HfApi") as api_class:
        api_class.return_value.upload_folder.return_value = mock.Mock(commit_url="https://hf.co/org/m/commit/1")
        url = hub.push_folder_to_hub(tmp_path, "org/m", token="hf_test")
    api = api_class.return_value
    api.create_repo.assert_called_once_with("org/m", private=False, exist_ok=True)
    assert api.upload_folder.call_args.kwargs["folder_path"] == str(tmp_path)
    assert "checkpoints/*" in api.upload_folder.call_args.kwargs["ignore_patterns"]
    assert url.endswith("/commit/1")


def test_push_without_token_or_network_is_one_clear_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    with mock.patch.object(hub, "get_token", return_value=None), pytest.raises(hub.HubUploadError, match="No Hugging Face token"):
        hub.push_folder_to_hub(tmp_path, "org/m")
    with mock.patch.object(hub, "HfApi") as api_class:
        api_class.return_value.create_repo.side_effect = ConnectionError("no route to host")
        with pytest.raises(hub.HubUploadError, match="local folder is intact"):
            hub.push_folder_to_hub(tmp_path, "org/m", token="hf_test")
    assert (tmp_path / "model.safetensors").read_bytes() == b"weights"


def test_push_without_token_fails_before_any_work(monkeypatch):
    from training import pretrain

    monkeypatch.setattr(hub, "get_token", lambda: None)
    monkeypatch.setattr(pretrain.data_lib, "build_pretraining_data", mock.Mock(side_effect=AssertionError("data work")))
    with pytest.raises(SystemExit, match="No Hugging Face token.*org/m"):
        pretrain.main(["--push_to_hub", "--hub_model_id", "org/m", "--report_to", "none", "--mixed_precision", "no"])
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        pretrain.parse_args(["--push_to_hub", "--hub_token", "hf_test"])
    pretrain.check_hub_push(pretrain.parse_args(["--push_to_hub", "--hub_model_id", "org/m", "--hub_token", "hf_x"]))


@pytest.mark.parametrize(
    "argv, steps, epochs",
    [
        ([], 360, None),  # the fast recipe's budget
        (["--num_train_epochs", "3"], None, 3),
        (["--max_train_steps", "5"], 5, None),
        (["--recipe", "paper"], None, 200),
        (["--recipe", "paper", "--max_train_steps", "5"], 5, None),
    ],
)
def test_recipe_step_budget_applies_only_without_an_explicit_one(argv, steps, epochs):
    from training.pretrain import parse_args

    args = parse_args(argv)
    assert (args.max_train_steps, args.num_train_epochs) == (steps, epochs)
    assert args.learning_rate is not None  # the rest of the recipe still fills in


@pytest.mark.parametrize("bf16_seconds, cpu, expected", [(0.5, True, "bf16"), (2.0, True, "no"), (2.0, False, "bf16")])
def test_default_precision_is_bf16_only_where_it_is_fast(bf16_seconds, cpu, expected, monkeypatch):
    from training import pretrain
    from training.pretrain import parse_args, resolve_mixed_precision

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(pretrain, "matmul_seconds", lambda dtypes: {torch.float32: 1.0, torch.bfloat16: bf16_seconds})
    assert resolve_mixed_precision(parse_args([]), cpu=cpu) == expected
    assert resolve_mixed_precision(parse_args(["--mixed_precision", "bf16"]), cpu=cpu) == "bf16"
    with pytest.raises(ValueError, match="fp16 on CPU"):
        resolve_mixed_precision(parse_args(["--mixed_precision", "fp16"]), cpu=True)


def test_matmul_probe_times_every_dtype():
    from training.pretrain import matmul_seconds

    seconds = matmul_seconds((torch.float32, torch.bfloat16), size=64, rounds=2)
    assert set(seconds) == {torch.float32, torch.bfloat16} and all(0 < s < 1 for s in seconds.values())


def test_keep_freed_memory_is_accepted_by_glibc():
    import platform
    import sys

    from training.common.runtime import keep_freed_memory

    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected
