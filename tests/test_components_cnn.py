"""CNN components: encoder and block shapes, the SB3 features-extractor adapter, named trunks in V, frame tasks,
and train-cnn on synthetic rollouts (learning, resume, errors, CLI)."""

import csv
import typing

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from rollouts.synthetic import write_synthetic_episodes
from worldmodels.checkpoint import read_checkpoint
from worldmodels.cli import main
from worldmodels.components.blocks import InceptionBlock, ResidualBlock, vgg_block
from worldmodels.components.cnn import ENCODERS, make_encoder
from worldmodels.components.frame_tasks import ActionRegression, RewardSign, frame_inputs
from worldmodels.components.sb3 import EncoderFeaturesExtractor
from worldmodels.components.train_cnn import split_episodes, train_cnn
from worldmodels.config import ConfigError, load_config
from worldmodels.config_schema import EncoderName
from worldmodels.vae import ConvVAE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(*overrides: str):
    return load_config("carracing-tiny", ["device=cpu", "cnn.features_dim=32", *overrides])


def read_log(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_registry_matches_the_config_choices():
    assert list(ENCODERS) == list(typing.get_args(EncoderName))


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_maps_frames_to_features(name):
    encoder = make_encoder(name, 3, 64, features_dim=32)
    features = encoder(torch.rand(2, 3, 64, 64))
    assert features.shape == (2, 32) and features.dtype == torch.float32 and (features >= 0).all()
    assert make_encoder(name, 6, (64, 64), features_dim=16)(torch.rand(2, 6, 64, 64)).shape == (2, 16)


def test_encoder_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown encoder 'lenet'; choose one of: mnist, alexnet"):
        make_encoder("lenet", 3)
    with pytest.raises(ValueError, match="encoder 'nature' cannot read 16x16 images"):
        make_encoder("nature", 3, 16)
    with pytest.raises(ValueError, match="features_dim >= 1"):
        make_encoder("vgg", 3, 64, features_dim=0)


def test_blocks_shapes_and_the_residual_sum():
    x = torch.rand(2, 8, 16, 16)
    assert vgg_block(8, 12, convs=2)(x).shape == (2, 12, 8, 8)
    inception = InceptionBlock(8, ones=4, threes_reduce=4, threes=6, fives_reduce=2, fives=3, pool_proj=5)
    assert inception(x).shape == (2, 18, 16, 16) and inception.out_channels == 18

    same = ResidualBlock(8, 8)
    assert isinstance(same.shortcut, torch.nn.Identity)
    torch.nn.init.zeros_(same.residual[-1].weight)  # F(x) = 0, so y = ReLU(0 + x) = x for x >= 0
    torch.testing.assert_close(same(x), x)
    down = ResidualBlock(8, 16, stride=2)
    assert not isinstance(down.shortcut, torch.nn.Identity)  # a projection: the shape changes
    assert down(x).shape == (2, 16, 8, 8)


class ImageEnv(gym.Env):
    """One-step episodes of random 64x64 RGB frames."""

    observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_each_encoder_is_an_sb3_features_extractor(name):
    model = PPO("CnnPolicy", ImageEnv(), n_steps=8, batch_size=8, device="cpu", seed=0,
                policy_kwargs={"features_extractor_class": EncoderFeaturesExtractor,
                               "features_extractor_kwargs": {"encoder": name, "features_dim": 24}})
    extractor = model.policy.features_extractor
    assert isinstance(extractor, EncoderFeaturesExtractor) and extractor.features_dim == 24
    action, _ = model.predict(ImageEnv().observation_space.sample(), deterministic=True)
    assert model.action_space.contains(int(action))
    obs = torch.as_tensor(np.stack([ImageEnv.observation_space.sample() for _ in range(2)])).permute(0, 3, 1, 2)
    assert model.policy.extract_features(obs.float(), extractor).shape == (2, 24)


def test_features_extractor_rejects_non_image_spaces():
    with pytest.raises(ValueError, match="needs an image observation space"):
        EncoderFeaturesExtractor(gym.spaces.Box(-1, 1, (3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="needs channel-first"):
        EncoderFeaturesExtractor(gym.spaces.Box(0, 255, (64, 64, 3), np.uint8))
    direct = EncoderFeaturesExtractor(gym.spaces.Box(0, 255, (3, 64, 64), np.uint8), encoder="vgg", features_dim=8)
    assert direct(torch.rand(2, 3, 64, 64)).shape == (2, 8)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_named_trunk_as_vs_encoder(name):
    vae = ConvVAE(z_size=8, encoder=name)
    out = vae(torch.rand(2, 3, 64, 64))
    assert out.recon.shape == (2, 3, 64, 64) and out.mu.shape == out.logvar.shape == (2, 8)


def test_frame_inputs_and_task_targets_and_scores():
    observations = torch.randint(0, 256, (2, 2, 64, 64, 3), dtype=torch.uint8)  # (B, o_t and o_t+1, H, W, C)
    pair = frame_inputs(observations, "transition")
    assert pair.shape == (2, 6, 64, 64) and pair.max() <= 1
    torch.testing.assert_close(pair[:, 3:], observations[:, 1].permute(0, 3, 1, 2).float() / 255)
    assert frame_inputs(observations, "frame").shape == (2, 3, 64, 64)

    signs = RewardSign()
    batch = {"rewards": torch.tensor([[-0.1], [0.0], [3.0], [2.0]])}
    targets = signs.targets(batch)
    assert targets.tolist() == [0, 1, 2, 2]
    perfect = torch.nn.functional.one_hot(targets, 3).float() * 10
    assert signs.score(perfect, targets)["accuracy"] == 1 and signs.score(perfect, targets)["majority_accuracy"] == 0.5

    actions = torch.randn(50, 3)
    regression = ActionRegression(3)
    assert regression.score(actions, actions)["r2"] == pytest.approx(1)
    assert regression.score(actions.mean(0).expand(50, 3), actions)["r2"] == pytest.approx(0, abs=1e-6)


def test_reward_sign_is_learned_on_held_out_episodes(tmp_path):
    # Synthetic reward = 1 when the square moves right: readable from (o_t, o_t+1), not from either alone.
    data = tmp_path / "episodes"
    write_synthetic_episodes(data, 16, 30)
    config = tiny_config("cnn.encoder=resnet", "cnn.task=reward", "cnn.epochs=5", "cnn.batch_size=16",
                         "cnn.features_dim=64")
    report = train_cnn(config, data, tmp_path / "run", progress=False)

    assert (report.train_episodes, report.heldout_episodes, report.summary.step) == (13, 3, 5 * 25)
    rows = read_log(tmp_path / "run" / "cnn_eval.csv")
    assert list(rows[0]) == ["step", "epoch", "cross_entropy", "accuracy", "majority_accuracy"]
    assert [(int(r["step"]), int(r["epoch"])) for r in rows] == [(25 * e, e) for e in range(1, 6)]
    # Held-out scores of the last two epochs (seeds 0-7: accuracy 0.86-0.95, cross-entropy 0.13-0.35; some seeds
    # only start to learn in epoch 3).
    accuracy, cross_entropy = ([float(r[name]) for r in rows] for name in ("accuracy", "cross_entropy"))
    assert np.mean(accuracy[-2:]) > report.scores["majority_accuracy"] + 0.2, accuracy
    assert np.mean(cross_entropy[-2:]) < 0.5 < cross_entropy[0], cross_entropy
    assert report.scores["accuracy"] == pytest.approx(accuracy[-1])
    assert "held-out episodes" in report.describe()
    checkpoint = read_checkpoint(tmp_path / "run" / "cnn.pt", kind="cnn")
    assert checkpoint.model_args == {"encoder": "resnet", "in_channels": 6, "image_size": (64, 64),
                                     "features_dim": 64, "outputs": 3}


def test_resumed_run_matches_uninterrupted_run(tmp_path):
    data = tmp_path / "episodes"
    write_synthetic_episodes(data, 5, 12)  # 4 training episodes: 48 steps, 6 batches of 8 per epoch
    config = tiny_config("cnn.encoder=nature", "cnn.task=action", "cnn.epochs=2", "cnn.batch_size=8")
    whole = train_cnn(config, data, tmp_path / "whole", progress=False, log_every=1)
    first = train_cnn(config, data, tmp_path / "split", progress=False, log_every=1, max_steps=9)
    assert (first.summary.step, first.summary.epoch) == (9, 1)
    second = train_cnn(config, data, tmp_path / "split", progress=False, log_every=1)
    assert (second.summary.resumed_from, second.summary.step) == (9, 12)

    expected, got = read_checkpoint(tmp_path / "whole" / "cnn.pt"), read_checkpoint(tmp_path / "split" / "cnn.pt")
    torch.testing.assert_close(got.model, expected.model, rtol=0, atol=0)
    train_rows = read_log(tmp_path / "split" / "cnn_log.csv")
    assert list(train_rows[0]) == ["step", "epoch", "loss", "frames_per_s"]  # each step is a batch of 8 frames
    eval_rows = read_log(tmp_path / "split" / "cnn_eval.csv")
    assert list(eval_rows[0]) == ["step", "epoch", "mse", "r2"]
    assert eval_rows == read_log(tmp_path / "whole" / "cnn_eval.csv") and len(eval_rows) == 2
    assert second.scores == whole.scores


def test_bad_settings_and_data_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="'cnn.encoder' must be one of 'mnist'"):
        tiny_config("cnn.encoder=lenet")
    with pytest.raises(ConfigError, match="'cnn.task' must be one of 'action', 'reward'"):
        tiny_config("cnn.task=value")
    with pytest.raises(ConfigError, match="'cnn.batch_size' must be > 0"):
        tiny_config("cnn.batch_size=0")
    files = write_synthetic_episodes(tmp_path / "one", 1, 5)
    with pytest.raises(ValueError, match="needs at least 2 episodes"):
        split_episodes(files, 0.2, seed=0)
    with pytest.raises(ValueError, match="heldout_fraction must be between 0 and 1"):
        split_episodes(files * 2, 1.0, seed=0)
    train, heldout = split_episodes([tmp_path / f"{i}" for i in range(10)], 0.2, seed=0)
    assert len(train) == 8 and len(heldout) == 2 and not set(train) & set(heldout)


def test_cli_trains_and_refuses_a_model_change(tmp_path, capsys):
    data = tmp_path / "episodes"
    write_synthetic_episodes(data, 3, 8)
    args = ["train-cnn", "--data", str(data), "--run", str(tmp_path / "run"), "--preset", "carracing-tiny",
            "--set", "device=cpu", "--set", "cnn.encoder=nature", "--set", "cnn.epochs=1", "--set", "cnn.batch_size=8"]
    assert main(args) == 0
    assert "train-cnn: trained to step 2" in capsys.readouterr().out
    assert main(args[:7] + ["--set", "cnn.encoder=mnist"]) == 2
    assert "holds cnn.pt, built with cnn.encoder='nature' (now 'mnist')" in capsys.readouterr().err
