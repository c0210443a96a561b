"""M ensembles: the batched dream of E members against one M's (shapes, seeds, dropping ended dreams, each member's
own step), the followed member, the pessimistic mode and the disagreement, the refusals, and training the members
(files, resume, bootstrap) into the run folder the dream reads them from."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import worldmodels.dream as dream_module
import worldmodels.train_mdnrnn as train_mdnrnn_module
from agents.dream_training import dream_spec
from worldmodels.checkpoint import read_checkpoint, save_untrained_checkpoint
from worldmodels.config import ConfigError, load_config
from worldmodels.dream import (
    DreamSettings,
    DreamSimulator,
    DreamState,
    StartLatents,
    load_members,
    settings_from_config,
)
from worldmodels.mdnrnn import MDNRNN
from worldmodels.run_layout import mdnrnn_member_checkpoints, mdnrnn_member_dir
from worldmodels.train_mdnrnn import bootstrap_episodes, train_mdnrnn

Z, H, A = 4, 32, 2  # H a multiple of 32: torch's vectorised sigmoid rounds a tail of (B, H) otherwise


def member(seed: int, done_bias: float = -3.0) -> MDNRNN:
    """An untrained M (``seed``) with reward and done heads whose dreams end at various times (done sampled with
    probability sigmoid(5 w h + done_bias), its actions weighing 5x in the LSTM)."""
    torch.manual_seed(seed)
    mdnrnn = MDNRNN(Z, A, H, reward_head=True, done_head=True).eval()
    with torch.no_grad():
        mdnrnn.lstm.weight_ih_l0[:, Z : Z + A] *= 5.0
        mdnrnn.done_head.weight.mul_(5.0)
        mdnrnn.done_head.bias.fill_(done_bias)
    return mdnrnn


def starts() -> StartLatents:
    rng = np.random.default_rng(0)
    return StartLatents(rng.normal(size=(3, Z)).astype(np.float32), np.full((3, Z), -4.0, np.float32))


def dream(mdnrnns: MDNRNN | list[MDNRNN], **settings: object) -> DreamSimulator:
    defaults: dict[str, object] = {"temperature": 1.3, "max_steps": 60, "done_mode": "sample", "check_every": 3}
    return DreamSimulator(mdnrnns, starts(), DreamSettings(**{**defaults, **settings}))


def random_params(sim: DreamSimulator, count: int) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 1.0, (count, sim.num_params)).astype(np.float32)


def test_an_ensemble_steps_each_member_on_the_followed_members_trajectory() -> None:
    members = [member(0), member(1)]
    sim = dream(members)
    state = sim.start(6, sim.generator(0))
    assert state.h.shape == state.c.shape == (2, 6, H) and sim.members == 2
    follow = torch.tensor([0, 1, 1, 0, 1, 0])
    action, noise = torch.rand(6, A) * 2 - 1, sim.draw_noise(6, sim.generator(1))
    step = sim.step(state, action, noise, member=follow)
    assert step.state.h.shape == (2, 6, H) and step.state.z.shape == (6, Z) and step.state.z.dtype == torch.float32
    assert step.reward.dtype == torch.float32 and step.done.dtype == torch.bool
    assert step.disagreement is not None and step.disagreement.shape == (6,) and (step.disagreement > 0).all()
    for k, mdnrnn in enumerate(members):  # member k's own step, from its own state, on the shared z and action
        alone = dream(mdnrnn).step(DreamState(state.z, state.h[k : k + 1], state.c[k : k + 1]), action, noise)
        torch.testing.assert_close(step.state.h[k], alone.state.h[0])
        torch.testing.assert_close(step.state.c[k], alone.state.c[0])
        rows = follow == k  # the dreams following member k draw its z and get its reward
        torch.testing.assert_close(step.state.z[rows], alone.state.z[rows])
        torch.testing.assert_close(step.reward[rows], alone.reward[rows])


def test_the_batched_product_of_other_devices_gives_the_same_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = dream([member(0), member(1), member(2)])
    state, follow = sim.start(6, sim.generator(0)), torch.tensor([0, 1, 2, 2, 1, 0])
    action, noise = torch.rand(6, A) * 2 - 1, sim.draw_noise(6, sim.generator(1))
    expected = sim.step(state, action, noise, member=follow)
    monkeypatch.setattr(dream_module, "_ONEDNN_LINEAR", None)  # torch.bmm over the members, as on a GPU
    step = sim.step(state, action, noise, member=follow)
    for got, want in zip((*step.state, step.reward, step.done, step.disagreement),
                         (*expected.state, expected.reward, expected.done, expected.disagreement)):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("ensemble", ["member", "pessimistic"])
def test_ensemble_dreams_replay_their_seeds_and_drop_ended_dreams_exactly(ensemble: str) -> None:
    members = [member(0), member(1)]
    params, seeds = random_params(dream(members), 64), np.arange(64) % 24  # some seeds shared
    result = dream(members, ensemble=ensemble).record(params, seeds)
    again = dream(members, ensemble=ensemble).record(params, seeds)
    np.testing.assert_array_equal(again.returns, result.returns)
    np.testing.assert_array_equal(again.lengths, result.lengths)
    assert result.lengths.min() < 20 and result.lengths.max() == 60  # dreams end at various times, some never
    masked = dream(members, ensemble=ensemble, compact_below=0.0).record(params, seeds)
    chunked = dream(members, ensemble=ensemble, cpu_chunk=5).record(params, seeds)
    for other in (masked, chunked):
        np.testing.assert_array_equal(other.lengths, result.lengths)
        np.testing.assert_allclose(other.returns, result.returns, rtol=1e-5)  # oneDNN rounds a lone row otherwise
    for i, length in enumerate(result.lengths):  # the disagreement of every live step, NaN after
        assert result.disagreement is not None and result.disagreement.dtype == np.float32
        assert (result.disagreement[i, :length] > 0).all() and np.isnan(result.disagreement[i, length:]).all()
        np.testing.assert_allclose(masked.disagreement[i, :length], result.disagreement[i, :length], rtol=1e-5)
    assert dream(members, ensemble=ensemble).record(params, seeds, keep_z=False).disagreement is None


def test_one_member_and_identical_members_dream_as_one_m() -> None:
    params, seeds = random_params(dream(member(0)), 48), np.arange(48) % 20
    plain = dream(member(0)).record(params, seeds)
    assert plain.disagreement is None
    np.testing.assert_array_equal(dream([member(0)]).record(params, seeds).returns, plain.returns)
    for ensemble in ("member", "pessimistic"):
        twins = dream([member(0), member(0)], ensemble=ensemble).record(params, seeds)
        np.testing.assert_array_equal(twins.returns, plain.returns)
        np.testing.assert_array_equal(twins.lengths, plain.lengths)
        np.testing.assert_array_equal(twins.z, plain.z)
        assert np.nanmax(twins.disagreement) == 0.0


def test_the_pessimistic_mode_ends_a_dream_where_any_member_predicts_the_end() -> None:
    never, always = member(0, done_bias=-30.0), member(0, done_bias=30.0)  # the same M but for its end
    settings = {"done_mode": "logit", "max_steps": 20}
    sim = dream([never, always], **settings)
    params, seeds = random_params(sim, 64), np.arange(64)
    followed = sim.draw_members(64, sim.generator(0))
    assert followed is not None and set(followed.tolist()) == {0, 1}
    lengths = sim.record(params, seeds).lengths
    assert set(lengths) == {1, 20} and 0.25 < (lengths == 1).mean() < 0.75  # each dream ends as its member says
    pessimistic = dream([never, always], ensemble="pessimistic", **settings).record(params, seeds)
    np.testing.assert_array_equal(pessimistic.lengths, 1)
    np.testing.assert_array_equal(dream([always, never], ensemble="pessimistic", **settings).record(
        params, seeds).lengths, 1)


def test_the_pessimistic_reward_is_the_lowest_members() -> None:
    low = copy.deepcopy(member(0))
    with torch.no_grad():
        low.reward_head.bias.sub_(1.0)  # the same dream, one less reward per step
    params, seeds = random_params(dream(low), 32), np.arange(32)
    high_returns, low_returns = (dream(m).record(params, seeds).returns for m in (member(0), low))
    pessimistic = dream([member(0), low], ensemble="pessimistic").record(params, seeds)
    np.testing.assert_array_equal(pessimistic.returns, low_returns)
    followed = dream([member(0), low]).record(params, seeds).returns
    assert np.all((followed == high_returns) | (followed == low_returns))
    assert (followed == high_returns).any() and (followed == low_returns).any()


def test_a_disagreement_limit_ends_dreams_where_the_members_disagree() -> None:
    members = [member(0), member(1)]
    params, seeds = random_params(dream(members), 32), np.arange(32)
    pessimistic = dream(members, ensemble="pessimistic").record(params, seeds)
    at_once = dream(members, ensemble="pessimistic", disagreement_limit=0.0).record(params, seeds)
    np.testing.assert_array_equal(at_once.lengths, 1)
    generous = dream(members, ensemble="pessimistic", disagreement_limit=1e6).record(params, seeds)
    np.testing.assert_array_equal(generous.returns, pessimistic.returns)
    twins = dream([member(0), member(0)], ensemble="pessimistic", disagreement_limit=0.0).record(params, seeds)
    assert twins.lengths.max() > 1  # members that agree never exceed 0


def test_ensembles_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="disagreement_limit 0.5 needs ensemble 'pessimistic'"):
        DreamSettings(disagreement_limit=0.5)
    with pytest.raises(ValueError, match="needs an ensemble of 2 or more Ms"):
        dream(member(0), ensemble="pessimistic", disagreement_limit=0.5)
    dropout = MDNRNN(Z, A, H, reward_head=True, done_head=True, dropout=0.1)
    with pytest.raises(ValueError, match="dropout dreams and an ensemble of 2 Ms are not combined"):
        dream([dropout, copy.deepcopy(dropout)], dropout_mask=True)
    with pytest.raises(ValueError, match="M member 1 has another shape than member 0"):
        dream([member(0), MDNRNN(Z, A, 2 * H, reward_head=True, done_head=True)])
    for name, hidden in (("a.pt", H), ("b.pt", 2 * H)):
        save_untrained_checkpoint(tmp_path / name, "mdnrnn", {"z_size": Z, "action_size": A, "hidden_size": hidden})
    with pytest.raises(ValueError) as refused:
        load_members([tmp_path / "a.pt", tmp_path / "b.pt"])
    assert "\n" not in str(refused.value) and str(tmp_path / "b.pt") in str(refused.value)
    assert f"hidden_size {2 * H} vs {H}" in str(refused.value) and "dream.members" in str(refused.value)


def test_the_ensemble_settings_are_config_keys() -> None:
    config = load_config("doom", ["mdnrnn.members=3", "mdnrnn.bootstrap=true", "dream.members=2",
                                  "dream.ensemble=pessimistic", "dream.disagreement_limit=0.5"])
    settings = settings_from_config(config)
    assert (settings.ensemble, settings.disagreement_limit) == ("pessimistic", 0.5)
    assert (config.mdnrnn.members, config.mdnrnn.bootstrap, config.dream.members) == (3, True, 2)
    for bad in ("mdnrnn.members=0", "dream.ensemble=mean", "dream.disagreement_limit=-1", "dream.members=0"):
        with pytest.raises(ConfigError):
            load_config("doom", [bad])


def tiny_config(*overrides: str):
    return load_config("carracing-tiny", ["device=cpu", "vae.z_size=8", "mdnrnn.hidden_size=16", "mdnrnn.seq_len=10",
                                          "mdnrnn.batch_size=4", "mdnrnn.steps=4", "mdnrnn.checkpoint_every=2",
                                          *overrides])


class Crash(Exception):
    """Stands for the process dying in the middle of training."""


def test_members_train_into_their_folders_as_single_ms_do(episode_folder, tmp_path: Path) -> None:
    data = episode_folder(4, 30, latents_z=8)
    summary = train_mdnrnn(tiny_config("mdnrnn.members=2"), data, tmp_path / "run", progress=False, log_every=1)
    assert len(summary.members) == 1 and "member 1: trained to step 4" in summary.describe()
    paths = mdnrnn_member_checkpoints(tmp_path / "run")
    assert paths == [tmp_path / "run" / "mdnrnn.pt", tmp_path / "run" / "mdnrnn_members" / "1" / "mdnrnn.pt"]
    assert (mdnrnn_member_dir(tmp_path / "run", 1) / "mdnrnn_log.csv").is_file()
    for k, path in enumerate(paths):  # member k is the M train_mdnrnn(seed=k) writes into an empty folder
        train_mdnrnn(tiny_config(), data, tmp_path / f"alone{k}", progress=False, log_every=1, seed=k)
        alone = read_checkpoint(tmp_path / f"alone{k}" / "mdnrnn.pt")
        got = read_checkpoint(path)
        torch.testing.assert_close(got.model, alone.model, rtol=0, atol=0)
        assert got.config == alone.config and "members" not in got.config and "bootstrap" not in got.config
    assert not torch.equal(read_checkpoint(paths[0]).model["mdn.weight"], read_checkpoint(paths[1]).model["mdn.weight"])
    with pytest.raises(FileNotFoundError, match="mdnrnn.members=3"):
        mdnrnn_member_checkpoints(tmp_path / "run", 3)


def test_a_member_resumes_after_a_crash_as_if_uninterrupted(episode_folder, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    data = episode_folder(4, 30, latents_z=8)
    config = tiny_config("mdnrnn.members=2")
    train_mdnrnn(config, data, tmp_path / "whole", progress=False, log_every=1)
    real_loss, calls = train_mdnrnn_module.mdnrnn_loss, []

    def crashing_loss(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 8:  # member 1's step 4 (member 0 took 4)
            raise Crash
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_mdnrnn_module, "mdnrnn_loss", crashing_loss)
    with pytest.raises(Crash):
        train_mdnrnn(config, data, tmp_path / "split", progress=False, log_every=1)
    monkeypatch.undo()
    resumed = train_mdnrnn(config, data, tmp_path / "split", progress=False, log_every=1)
    assert resumed.already_finished and resumed.members[0].resumed_from == 2
    for path in mdnrnn_member_checkpoints(tmp_path / "whole"):
        got = read_checkpoint(tmp_path / "split" / path.relative_to(tmp_path / "whole"))
        expected = read_checkpoint(path)
        assert got.step == expected.step == 4
        torch.testing.assert_close(got.model, expected.model, rtol=0, atol=0)


def test_bootstrapped_members_train_on_resamples_of_the_episodes(episode_folder, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = episode_folder(6, 20, latents_z=8)
    seen: list[list[str]] = []
    dataset = train_mdnrnn_module.SequenceDataset

    def spy(files: list[Path], *args: object, **kwargs: object) -> object:
        seen.append([Path(f).name for f in files])
        return dataset(files, *args, **kwargs)

    monkeypatch.setattr(train_mdnrnn_module, "SequenceDataset", spy)
    train_mdnrnn(tiny_config("mdnrnn.members=3", "mdnrnn.bootstrap=true"), data, tmp_path / "run", progress=False)
    everything = sorted(seen[0])
    assert len(set(everything)) == 6  # member 0: every episode once
    for files in seen[1:]:  # the others: 6 draws with replacement, each member its own
        assert len(files) == 6 and len(set(files)) < 6 and set(files) <= set(everything)
    assert seen[1] != seen[2]
    assert [Path(f).name for f in bootstrap_episodes([data / name for name in everything], 1)] == seen[1]
    assert read_checkpoint(mdnrnn_member_dir(tmp_path / "run", 1) / "mdnrnn.pt").config["bootstrap"] is True
    assert "bootstrap" not in read_checkpoint(tmp_path / "run" / "mdnrnn.pt").config


def test_the_runs_dream_steps_its_trained_members(episode_folder, tmp_path: Path) -> None:
    data, run = episode_folder(2, 12, latents_z=8), tmp_path / "run"
    config = tiny_config("mdnrnn.members=2", "mdnrnn.steps=0", "mdnrnn.reward_head=true")
    train_mdnrnn(config, data, run, progress=False)
    save_untrained_checkpoint(run / "vae.pt", "vae", {"z_size": 8})
    assert dream_spec(config, run, data)().members == 2  # dream.members null: every trained member
    assert dream_spec(replace(config, dream=replace(config.dream, members=1)), run, data)().members == 1
    save_untrained_checkpoint(mdnrnn_member_dir(run, 2) / "mdnrnn.pt", "mdnrnn",
                              {"z_size": 8, "action_size": 3, "hidden_size": 8, "reward_head": True})
    with pytest.raises(ValueError, match="mdnrnn_members/2/mdnrnn.pt is an M of another shape"):
        dream_spec(config, run, data)()
