"""Checkpoints: round trips, weights-only loading, and clear refusals of corrupt or mismatched files."""

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from worldmodels.checkpoint import (
    Checkpoint,
    CheckpointError,
    capture_rng_state,
    load_mdnrnn,
    load_model_state,
    load_vae,
    read_checkpoint,
    read_model_args,
    restore_rng_state,
    save_checkpoint,
)
from worldmodels.config import load_config
from worldmodels.config_schema import VAEConfig
from worldmodels.mdnrnn import MDNRNN
from worldmodels.train_vae import train_vae
from worldmodels.vae import ConvVAE


def checkpoint_of(model: torch.nn.Module, kind: str, model_args: dict) -> Checkpoint:
    optimizer = torch.optim.Adam(model.parameters())
    return Checkpoint(kind, model_args, model.state_dict(), optimizer.state_dict(),
                      dataclasses.asdict(VAEConfig()), step=7, epoch=1, epoch_batches=2, rng=capture_rng_state())


def vae_checkpoint(path: Path, z_size: int = 16) -> Checkpoint:
    checkpoint = checkpoint_of(ConvVAE(z_size=z_size), "vae", {"z_size": z_size, "in_channels": 3})
    save_checkpoint(path, checkpoint)
    return checkpoint


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vae_round_trip(tmp_path):
    saved = vae_checkpoint(tmp_path / "vae.pt")
    loaded = read_checkpoint(tmp_path / "vae.pt")
    assert (loaded.kind, loaded.step, loaded.epoch, loaded.epoch_batches) == ("vae", 7, 1, 2)
    assert loaded.config == dataclasses.asdict(VAEConfig())
    vae = load_vae(tmp_path / "vae.pt", "cpu")
    assert isinstance(vae, ConvVAE) and not vae.training and vae.z_size == 16
    torch.testing.assert_close(vae.state_dict(), saved.model, rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["vae.pt"]  # no temporary files left


def test_the_same_checkpoint_is_saved_as_the_same_bytes(tmp_path):
    # Reports record V's and M's SHA-256 (their provenance): saving the same weights again, in another folder or
    # under another temporary name, must not change it.
    checkpoint = vae_checkpoint(tmp_path / "vae.pt")
    save_checkpoint(tmp_path / "again" / "vae.pt", checkpoint)
    save_checkpoint(tmp_path / "vae.pt", checkpoint)  # over itself, through another temporary file
    assert digest(tmp_path / "vae.pt") == digest(tmp_path / "again" / "vae.pt")


def test_mdnrnn_round_trip_and_kind_check(tmp_path):
    args = {"z_size": 4, "action_size": 2, "hidden_size": 8, "num_mixtures": 3, "reward_head": True, "done_head": False}
    save_checkpoint(tmp_path / "mdnrnn.pt", checkpoint_of(MDNRNN(**args), "mdnrnn", args))
    model = load_mdnrnn(tmp_path / "mdnrnn.pt")
    assert (model.z_size, model.action_size, model.hidden_size, model.num_mixtures) == (4, 2, 8, 3)
    assert model.reward_head is not None and model.done_head is None
    with pytest.raises(CheckpointError, match=r"holds a 'mdnrnn' model, expected 'vae'"):
        load_vae(tmp_path / "mdnrnn.pt")


def test_model_args_are_read_with_the_class_defaults_and_the_file_unchanged(tmp_path):
    vae_checkpoint(tmp_path / "vae.pt", z_size=8)
    before = digest(tmp_path / "vae.pt")
    assert read_model_args(tmp_path / "vae.pt", "vae") == {"z_size": 8, "in_channels": 3, "encoder": "published"}
    assert digest(tmp_path / "vae.pt") == before
    with pytest.raises(CheckpointError, match="is not a worldmodels 'mdnrnn' checkpoint"):
        read_model_args(tmp_path / "vae.pt", "mdnrnn")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="text.pt is not a readable torch checkpoint"):
        read_model_args(tmp_path / "text.pt", "vae")
    with pytest.raises(FileNotFoundError):
        read_model_args(tmp_path / "missing.pt", "vae")


def test_wrong_shape_names_parameter_shapes_and_file(tmp_path):
    path = tmp_path / "vae.pt"
    checkpoint = vae_checkpoint(path, z_size=16)
    model = ConvVAE(z_size=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as caught:
        load_model_state(model, checkpoint.model, path)
    message = str(caught.value)
    assert "fc_mu.weight is (16, 1024) in the file but (32, 1024) in the model" in message
    assert str(path) in message
    torch.testing.assert_close(model.state_dict(), before, rtol=0, atol=0)  # nothing was copied


def test_training_refuses_a_checkpoint_of_another_shape_and_keeps_it(episode_folder, tmp_path):
    path = tmp_path / "vae.pt"
    vae_checkpoint(path, z_size=16)
    before = digest(path)
    config = load_config("carracing-tiny", ["device=cpu", "vae.z_size=32"])
    with pytest.raises(CheckpointError, match=r"fc_mu\.weight is \(16, 1024\) in the file but \(32, 1024\)"):
        train_vae(config, episode_folder(1, 3), tmp_path, progress=False)
    assert digest(path) == before


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint_is_refused_naming_the_file(tmp_path, damage):
    path = tmp_path / "vae.pt"
    vae_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint" * 64, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    before = digest(path)
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} is not a readable torch checkpoint"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_vae(path)
    assert digest(path) == before


def test_training_refuses_a_corrupt_checkpoint_and_keeps_it(episode_folder, tmp_path):
    path = tmp_path / "vae.pt"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match=str(path)):
        train_vae(load_config("carracing-tiny", ["device=cpu"]), episode_folder(1, 3), tmp_path, progress=False)
    assert path.read_bytes() == b"\x00" * 100


class Payload:
    """Not a tensor or plain container: weights-only loading must refuse to rebuild it."""


def test_only_weights_are_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        read_checkpoint(path)


def test_foreign_file_and_missing_file(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a worldmodels training checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vae(tmp_path / "missing.pt")


def test_failed_save_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "vae.pt"
    vae_checkpoint(path)
    before = digest(path)

    def broken_save(obj, file):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        vae_checkpoint(path)
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["vae.pt"]


def test_rng_state_round_trip():
    state = capture_rng_state()
    first = torch.randn(5)
    restore_rng_state(state)
    torch.testing.assert_close(torch.randn(5), first, rtol=0, atol=0)


def test_loading_one_model_imports_only_its_own_family(tmp_path):
    """checkpoint.py names each kind's class by module, so reading V does not import MuseGAN (or music21)."""
    import subprocess
    import sys

    code = (f"import sys; from worldmodels.checkpoint import load_vae, save_untrained_checkpoint; "
            f"save_untrained_checkpoint({str(tmp_path / 'vae.pt')!r}, 'vae', {{'z_size': 8}}); "
            f"load_vae({str(tmp_path / 'vae.pt')!r}); "
            "print(sorted(m for m in ('worldmodels.music.musegan', 'music21', 'worldmodels.components.cyclegan', "
            "'worldmodels.mdnrnn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
