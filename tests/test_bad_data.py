"""Bad input is refused with one clear error naming the file, and destroys nothing: non-finite data, damaged
episode and checkpoint files, frames of another size, and training that diverges."""

import json
import os
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rollouts.collect import EnvSpec, EpisodeWorker, PolicySpec, scan_existing
from rollouts.datasets import FrameDataset, SequenceDataset
from rollouts.storage import (
    EpisodeFileError,
    episode_path,
    episode_to_bytes,
    latent_path,
    read_arrays,
    read_episode,
    read_episode_meta,
    read_latents,
    write_latents,
)
from rollouts.synthetic import make_synthetic_episode, write_synthetic_episodes
from worldmodels.checkpoint import CheckpointError, load_vae, read_checkpoint, save_untrained_checkpoint
from worldmodels.cli import main
from worldmodels.config import load_config
from worldmodels.train_mdnrnn import train_mdnrnn
from worldmodels.training import TrainingDivergedError, TrainingPlan, run_training

NAN_ENV_ID = "test_bad_data/NaNReward-v0"


def write_raw_episode(path: Path, episode, **replace: np.ndarray) -> None:
    """Store ``episode`` as its file would be, with arrays replaced and no validation (a damaged or foreign file)."""
    names = ("observations", "actions", "rewards", "terminated", "truncated")
    arrays = {name: getattr(episode, name) for name in names}
    np.savez_compressed(path, **{**arrays, **replace}, meta=np.array(json.dumps(episode.meta)))


def member_data_offset(path: Path, member: str) -> int:
    """Where ``member``'s (compressed) bytes start inside the zip at ``path``."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with path.open("rb") as file:
        file.seek(info.header_offset + 26)
        name_length, extra_length = np.frombuffer(file.read(4), np.uint16)
    return info.header_offset + 30 + int(name_length) + int(extra_length)


def damage_member(path: Path, member: str = "observations.npy", count: int = 64) -> None:
    """Overwrite ``count`` bytes inside ``member``'s compressed data; the other members still read."""
    data = bytearray(path.read_bytes())
    start = member_data_offset(path, member) + 40
    data[start : start + count] = np.random.default_rng(0).integers(0, 256, count, np.uint8).tobytes()
    path.write_bytes(bytes(data))


# Non-finite numbers


def test_non_finite_rewards_actions_and_latents_are_refused_on_read(tmp_path):
    episode = make_synthetic_episode(0, 10)
    rewards = episode.rewards.copy()
    rewards[3] = np.nan
    write_raw_episode(tmp_path / "episode_000000.npz", episode, rewards=rewards)
    actions = episode.actions.copy()
    actions[2, 1] = np.inf
    write_raw_episode(tmp_path / "episode_000001.npz", make_synthetic_episode(1, 10), actions=actions)
    nan_rewards, inf_actions = tmp_path / "episode_000000.npz", tmp_path / "episode_000001.npz"

    with pytest.raises(EpisodeFileError, match=r"episode_000000.npz: rewards holds 1 non-finite values .*index \(3,\)"):
        read_episode(nan_rewards)
    with pytest.raises(EpisodeFileError, match="episode_000000.npz: rewards holds 1 non-finite"):
        read_arrays(nan_rewards, ("rewards",))
    with pytest.raises(EpisodeFileError, match="episode_000001.npz: actions holds 1 non-finite"):
        read_episode(inf_actions)
    mu = np.zeros((11, 4), np.float32)
    write_latents(inf_actions, mu, np.full_like(mu, np.nan))
    with pytest.raises(EpisodeFileError, match=r"latents.npz: logvar holds 44 non-finite.*`worldmodels encode`"):
        read_latents(inf_actions)
    write_latents(nan_rewards, mu, mu)
    with pytest.raises(EpisodeFileError, match="episode_000000.npz: rewards holds 1 non-finite"):
        list(SequenceDataset([nan_rewards], seq_len=4))


def test_train_mdnrnn_refuses_nan_rewards_and_writes_no_checkpoint(tmp_path):
    data = tmp_path / "episodes"
    data.mkdir()
    for index in range(2):
        episode = make_synthetic_episode(index, 12)
        rewards = episode.rewards.copy()
        rewards[-1] = np.nan
        write_raw_episode(episode_path(data, index), episode, rewards=rewards)
        write_latents(episode_path(data, index), np.zeros((13, 8), np.float32), np.zeros((13, 8), np.float32))
    config = load_config("carracing-tiny", ["device=cpu", "vae.z_size=8", "mdnrnn.hidden_size=16",
                                            "mdnrnn.seq_len=6", "mdnrnn.steps=3"])
    with pytest.raises(EpisodeFileError, match="rewards holds 1 non-finite"):
        train_mdnrnn(config, data, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "mdnrnn.pt").exists()


class NaNRewardEnv(gym.Env):
    """Frames of zeros; the third step's reward is NaN, then the episode ends."""

    observation_space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros((64, 64, 3), np.uint8), {}

    def step(self, action):
        self.t += 1
        return np.zeros((64, 64, 3), np.uint8), float("nan") if self.t == 3 else 1.0, self.t == 4, False, {}


def test_a_worker_whose_env_returns_nan_rewards_is_refused():
    if NAN_ENV_ID not in gym.registry:
        gym.register(NAN_ENV_ID, entry_point=NaNRewardEnv)
    worker = EpisodeWorker(EnvSpec(NAN_ENV_ID), PolicySpec("uniform"))
    with pytest.raises(EpisodeFileError, match=rf"episode 7 \(seed 7, {NAN_ENV_ID}\): rewards holds 1 non-finite"):
        worker.run(7, 7)
    episode = make_synthetic_episode(0, 5)
    episode.rewards[0] = np.inf
    with pytest.raises(EpisodeFileError, match="rewards holds 1 non-finite"):
        episode_to_bytes(episode)


# Damaged episode files


def object_array_episode(path: Path, index: int) -> None:
    episode = make_synthetic_episode(index, 6)
    observations = np.empty(len(episode.observations), object)
    observations[:] = list(episode.observations)
    write_raw_episode(path, episode, observations=observations)


@pytest.mark.parametrize("damage", ["bad_crc", "object_array", "nan_rewards"])
def test_resume_scan_sets_aside_files_whose_meta_reads_but_arrays_do_not(tmp_path, damage):
    write_synthetic_episodes(tmp_path, 3, 6)
    path = episode_path(tmp_path, 1)
    if damage == "bad_crc":
        damage_member(path)
    elif damage == "object_array":
        object_array_episode(path, 1)
    else:
        episode = make_synthetic_episode(1, 6)
        rewards = episode.rewards.copy()
        rewards[0] = np.nan
        write_raw_episode(path, episode, rewards=rewards)
    original_bytes = path.read_bytes()
    assert read_episode_meta(path)["index"] == 1  # what the scan used to read: it looks fine

    done, todo = scan_existing(tmp_path, 4)
    assert sorted(done) == [0, 2] and todo == [1, 3]
    assert not path.exists()
    assert (tmp_path / "episode_000001.npz.corrupt").read_bytes() == original_bytes  # kept, not deleted


def test_random_bytes_inside_an_npz_are_an_episode_file_error(tmp_path):
    path = tmp_path / "episode_000000.npz"
    write_synthetic_episodes(tmp_path, 1, 10)
    damage_member(path, count=200)  # decompression fails inside zlib
    with pytest.raises(EpisodeFileError, match="episode_000000.npz: not a readable .npz file"):
        read_episode(path)
    with pytest.raises(EpisodeFileError, match="episode_000000.npz"):
        list(FrameDataset([path]))


def test_every_damaged_byte_pattern_gives_an_episode_file_error(tmp_path):
    """Flipped bits, overwritten runs and truncations all over a small episode file: the file either still reads
    (the damage hit zip metadata nothing checks) or fails with EpisodeFileError, never another exception."""
    original = episode_to_bytes(make_synthetic_episode(0, 6))
    path = tmp_path / "episode_000000.npz"
    rng = np.random.default_rng(1)
    refused = 0
    for trial in range(300):
        data = bytearray(original)
        start = int(rng.integers(len(data)))
        if trial % 3 == 0:
            data[start] ^= 1 << int(rng.integers(8))
        elif trial % 3 == 1:
            data[start : start + 32] = rng.integers(0, 256, 32, np.uint8).tobytes()
        else:
            data = data[:start]
        path.write_bytes(bytes(data))
        try:
            read_episode(path)
        except EpisodeFileError as err:
            assert str(path) in str(err)
            refused += 1
    assert refused > 200


def test_latents_that_do_not_decode_name_the_file_and_say_to_encode_again(tmp_path):
    (file,) = write_synthetic_episodes(tmp_path, 1, 6)
    write_latents(file, np.zeros((7, 4), np.float32), np.zeros((7, 4), np.float32))
    latent_path(file).write_bytes(b"PK\x03\x04" + os.urandom(100))
    with pytest.raises(EpisodeFileError, match=r"episode_000000.latents.npz: not a readable .npz file.*encode"):
        read_latents(file)


# Frame and latent sizes


def test_frames_of_another_size_are_refused_as_they_stream_naming_the_file_and_both_shapes(tmp_path):
    files = write_synthetic_episodes(tmp_path, 2, 5)
    small = episode_path(tmp_path, 2)
    small.write_bytes(episode_to_bytes(make_synthetic_episode(2, 5, size=48)))
    files.append(small)
    expected = (r"episode_000002.npz: frames of shape \(48, 48, 3\) per step, but .* episode_000000.npz has "
                r"\(64, 64, 3\)")
    with pytest.raises(EpisodeFileError, match=expected):
        list(FrameDataset(files, shuffle=False, buffer_episodes=1))
    with pytest.raises(EpisodeFileError, match=expected):
        list(SequenceDataset(files, seq_len=4, source="observations", shuffle=False, buffer_episodes=1))
    write_latents(files[0], np.zeros((6, 4), np.float32), np.zeros((6, 4), np.float32))
    write_latents(files[1], np.zeros((6, 6), np.float32), np.zeros((6, 6), np.float32))
    with pytest.raises(EpisodeFileError, match=r"episode_000001.npz: latents of shape \(6,\) per step, but .*\(4,\)"):
        list(SequenceDataset(files[:2], seq_len=4, shuffle=False, buffer_episodes=1))


# Checkpoints


def garbage_checkpoints(folder: Path) -> dict[str, Path]:
    """One file per kind of garbage a checkpoint path may hold."""
    save_untrained_checkpoint(folder / "good.pt", "vae", {"z_size": 4})
    good = (folder / "good.pt").read_bytes()
    record = torch.load(folder / "good.pt", weights_only=True)
    files = {
        "text": b"this is not a checkpoint\nbut a text file\n",
        "short_text": b"abc",
        "random_bytes": np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes(),
        "empty": b"",
        "truncated_zip": good[: len(good) // 2],
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pt"
        paths[name].write_bytes(data)
    flipped = bytearray(good)
    middle = len(flipped) // 2
    flipped[middle : middle + 64] = bytes(255 - b for b in flipped[middle : middle + 64])
    paths["bad_crc"] = folder / "bad_crc.pt"
    paths["bad_crc"].write_bytes(bytes(flipped))
    nan_weights = {**record, "model": {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                       for k, v in record["model"].items()}}
    for name, value in {
        "a_list": [1, 2, 3],
        "kind_is_a_list": {**record, "kind": ["vae"]},
        "model_args_is_text": {**record, "model_args": "z_size=4"},
        "model_holds_numbers": {**record, "model": {"encoder.0.weight": 1.0}},
        "step_is_text": {**record, "step": "10"},
        "nan_weights": nan_weights,
    }.items():
        paths[name] = folder / f"{name}.pt"
        torch.save(value, paths[name])
    return paths


def test_every_kind_of_garbage_checkpoint_is_one_checkpoint_error_and_left_untouched(tmp_path):
    for name, path in garbage_checkpoints(tmp_path).items():
        before = path.read_bytes()
        with pytest.raises(CheckpointError) as caught:
            load_vae(path)
        message = str(caught.value)
        assert str(path) in message and "\n" not in message, name
        assert path.read_bytes() == before, name


def test_cli_reports_a_text_file_named_vae_pt_in_one_line(tmp_path, capsys):
    write_synthetic_episodes(tmp_path / "episodes", 1, 4)
    run = tmp_path / "run"
    run.mkdir()
    (run / "vae.pt").write_text("epochs: 3\nlr: 0.1\n")  # torch's unpickler raised IndexError on it
    argv = ["encode", "--preset", "carracing-tiny", "--set", "device=cpu", "--data", str(tmp_path / "episodes"),
            "--run", str(run)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vae.pt is not a readable torch checkpoint" in err
    assert (run / "vae.pt").read_text() == "epochs: 3\nlr: 0.1\n"


# Training that diverges


class Batches:
    """An endless-enough data set of dummy batches with ``set_epoch``."""

    def __init__(self, count: int) -> None:
        self.count = count

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self):
        return iter(range(self.count))


def diverging_run(tmp_path: Path, nan_at: int, log_every: int, checkpoint_every: int, poison_weights: bool = False):
    """run_training on a linear model whose loss (or weights) turn NaN at optimiser step ``nan_at``."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = 0

    def step(batch):
        nonlocal steps
        steps += 1
        loss = model(torch.ones(1, 2)).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if steps >= nan_at and poison_weights:
            with torch.no_grad():
                model.weight.fill_(float("nan"))
        value = loss.detach() * (float("nan") if steps >= nan_at and not poison_weights else 1.0)
        return {"loss": value, "other": loss.detach()}, 1

    plan = TrainingPlan(stage="mdnrnn", checkpoint_path=tmp_path / "model.pt", log_path=tmp_path / "log.csv",
                        metric_names=("other", "loss"), rate_name="items_per_s", checkpoint_every=checkpoint_every,
                        log_every=log_every, max_steps=20)
    data = Batches(20)
    return run_training(plan, model, optimizer, {}, {}, data, data, step, progress=False)


def test_a_nan_loss_stops_training_at_the_log_row_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDivergedError, match=r"mdnrnn: loss is nan .* at step 6; .*model.pt still holds step 4"):
        diverging_run(tmp_path, nan_at=5, log_every=3, checkpoint_every=2)
    checkpoint = read_checkpoint(tmp_path / "model.pt")
    assert checkpoint.step == 4 and all(torch.isfinite(t).all() for t in checkpoint.model.values())


def test_a_nan_loss_between_log_rows_is_caught_before_the_checkpoint_is_written(tmp_path):
    with pytest.raises(TrainingDivergedError, match="mdnrnn: loss is not finite .* at step 4; .*still holds step 2"):
        diverging_run(tmp_path, nan_at=3, log_every=10, checkpoint_every=2)
    assert read_checkpoint(tmp_path / "model.pt").step == 2


def test_non_finite_weights_are_never_saved(tmp_path):
    expected = r"the weights weight are not finite at step 2; training stopped and no checkpoint"
    with pytest.raises(TrainingDivergedError, match=expected):
        diverging_run(tmp_path, nan_at=2, log_every=10, checkpoint_every=2, poison_weights=True)
    assert not (tmp_path / "model.pt").exists()


def test_a_checkpoint_whose_optimizer_state_does_not_fit_is_a_checkpoint_error(tmp_path):
    diverging_run(tmp_path, nan_at=100, log_every=5, checkpoint_every=5)
    record = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save({**record, "step": 5, "optimizer": {"state": {}, "param_groups": [{"params": [0]}]}},
               tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="optimiser or RNG state does not fit"):
        diverging_run(tmp_path, nan_at=100, log_every=5, checkpoint_every=5)
