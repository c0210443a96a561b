"""Data of another V, or another environment, is never reused silently: latents and GANs record V's identity,
encode re-encodes what another V wrote, consumers refuse it, and collect refuses a folder of another env."""

import logging
import shutil

import numpy as np
import pytest

from rollouts.collect import EnvSpec, PolicySpec, collect_episodes
from rollouts.storage import EpisodeFileError, latent_path, list_episode_files, read_latents_identity, write_latents
from rollouts.synthetic import write_synthetic_episodes
from worldmodels.checkpoint import read_checkpoint, save_untrained_checkpoint, vae_identity
from worldmodels.components.train_gan import train_gan
from worldmodels.config import load_config
from worldmodels.dream import DreamSimulatorSpec, load_start_latents
from worldmodels.dream_video import load_dream_renderer
from worldmodels.encode import encode_episodes
from worldmodels.run_layout import COLLECT_CONFIG_NAME
from worldmodels.stages import collect_stage
from worldmodels.train_mdnrnn import train_mdnrnn

Z = 4


@pytest.fixture
def folder(tmp_path):
    """3 synthetic episodes of 6 steps, and two different untrained Vs (v1.pt, v2.pt) beside them."""
    write_synthetic_episodes(tmp_path / "episodes", 3, 6)
    save_untrained_checkpoint(tmp_path / "v1.pt", "vae", {"z_size": Z})
    save_untrained_checkpoint(tmp_path / "v2.pt", "vae", {"z_size": Z})
    return tmp_path


def test_vae_identity_depends_on_the_weights_not_the_file(folder):
    shutil.copy(folder / "v1.pt", folder / "copy.pt")
    assert vae_identity(folder / "v1.pt") == vae_identity(folder / "copy.pt")
    assert vae_identity(folder / "v1.pt") != vae_identity(folder / "v2.pt")
    assert vae_identity(folder / "v1.pt").startswith("step 0, weights ")


def test_encode_records_v_and_uses_it_not_file_times_to_decide_what_is_up_to_date(folder):
    episodes, files = folder / "episodes", list_episode_files(folder / "episodes")
    assert encode_episodes(folder / "v1.pt", episodes, device="cpu", progress=False) == 3
    assert {read_latents_identity(f) for f in files} == {vae_identity(folder / "v1.pt")}

    shutil.copy(folder / "v1.pt", folder / "v1_copy.pt")  # a newer file, the same V: nothing to do
    assert encode_episodes(folder / "v1_copy.pt", episodes, device="cpu", progress=False) == 0
    assert encode_episodes(folder / "v2.pt", episodes, device="cpu", progress=False) == 3  # another V
    assert {read_latents_identity(f) for f in files} == {vae_identity(folder / "v2.pt")}

    mu = np.zeros((7, Z), np.float32)
    write_latents(files[0], mu, mu)  # the old format: no identity, so stale
    latent_path(files[1]).write_bytes(b"damaged")  # unreadable: encoded again
    assert encode_episodes(folder / "v2.pt", episodes, device="cpu", progress=False) == 2


def test_train_mdnrnn_refuses_latents_of_another_v_than_the_runs(folder, caplog):
    episodes, run = folder / "episodes", folder / "run"
    encode_episodes(folder / "v1.pt", episodes, device="cpu", progress=False)
    run.mkdir()
    shutil.copy(folder / "v2.pt", run / "vae.pt")
    config = load_config("carracing-tiny", ["device=cpu", f"vae.z_size={Z}", "mdnrnn.hidden_size=8",
                                            "mdnrnn.seq_len=4", "mdnrnn.steps=1"])
    with pytest.raises(EpisodeFileError, match=r"3 of 3 episodes in .*episodes hold latents of another V than "
                                               r".*run/vae.pt .*run `worldmodels encode --data"):
        train_mdnrnn(config, episodes, run, progress=False)
    assert not (run / "mdnrnn.pt").exists()

    for file in list_episode_files(episodes):  # old-format latents: which V is unknown, accepted with a warning
        mu = np.zeros((7, Z), np.float32)
        write_latents(file, mu, mu)
    with caplog.at_level(logging.WARNING, logger="worldmodels.encode"):
        assert train_mdnrnn(config, episodes, run, progress=False).step == 1
    assert "do not record which V encoded them" in caplog.text


def test_dream_starts_refuse_latents_of_another_v(folder):
    episodes = folder / "episodes"
    encode_episodes(folder / "v1.pt", episodes, device="cpu", progress=False)
    assert load_start_latents(episodes, vae_path=folder / "v1.pt").mu.shape == (3, Z)
    with pytest.raises(EpisodeFileError, match="hold latents of another V than .*v2.pt"):
        load_start_latents(episodes, vae_path=folder / "v2.pt")
    save_untrained_checkpoint(folder / "mdnrnn.pt", "mdnrnn", {"z_size": Z, "action_size": 3, "hidden_size": 8})
    with pytest.raises(EpisodeFileError, match="run `worldmodels encode"):
        DreamSimulatorSpec(folder / "mdnrnn.pt", episodes, folder / "v2.pt", device="cpu")()


def test_a_gan_renderer_trained_on_another_v_is_refused(folder):
    episodes, run = folder / "episodes", folder / "gan_run"
    config = load_config("carracing-tiny", ["device=cpu", "gan.variant=dcgan", "gan.width=4", "gan.batch_size=4",
                                            "gan.latent_source=vae", "gan.steps=1", "gan.sample_every=100"])
    train_gan(config, episodes, run, progress=False, vae_path=folder / "v1.pt")
    assert read_checkpoint(run / "gan.pt").vae_identity == vae_identity(folder / "v1.pt")

    assert load_dream_renderer(run / "gan.pt", Z, vae_path=folder / "v1.pt")(np.zeros((2, Z), np.float32)).shape == (
        2, 64, 64, 3)
    with pytest.raises(ValueError, match=r"gan.pt was trained on the latents of V step 0, weights \w+, but this "
                                         r"dream's V .*v2.pt is V step 0"):
        load_dream_renderer(run / "gan.pt", Z, vae_path=folder / "v2.pt")
    before = (run / "gan.pt").read_bytes()
    with pytest.raises(ValueError, match="resume it with that V"):
        train_gan(config, episodes, run, progress=False, vae_path=folder / "v2.pt")
    assert (run / "gan.pt").read_bytes() == before


def test_collect_refuses_a_folder_of_another_environments_episodes(folder):
    episodes = folder / "episodes"  # synthetic episodes: env_id "synthetic"
    (episodes / COLLECT_CONFIG_NAME).write_text("earlier: config\n")
    names_before = sorted(p.name for p in episodes.iterdir())
    expected = (r"episodes holds episodes of 'synthetic' \(e.g. episode_000000.npz\), and this collect runs "
                r"'worldmodels/CarRacing-v0'.*another --out")
    with pytest.raises(ValueError, match=expected):
        collect_stage(load_config("carracing-tiny"), episodes)
    with pytest.raises(ValueError, match=expected):
        collect_episodes(episodes, EnvSpec("worldmodels/CarRacing-v0", 5), PolicySpec(), episodes=4, progress=False)
    assert (episodes / COLLECT_CONFIG_NAME).read_text() == "earlier: config\n"  # not overwritten
    assert sorted(p.name for p in episodes.iterdir()) == names_before
