"""The dream: M's fused single step against MDNRNN.step, the mixture draw, batched steps against single-dream
steps, per-row controllers, done masking, dropping ended dreams, bfloat16 dreams against float32, dropout dreams, the
survival reward, starts from stored latents, and the Gymnasium dream envs."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import worldmodels.dream as dream_module
from envs.dream_env import DreamEnv, DreamVectorEnv  # importing envs registers the ids
from rollouts.storage import episode_path, read_arrays, read_latents, write_latents
from rollouts.synthetic import projected_latents, write_synthetic_episodes
from worldmodels.checkpoint import load_mdnrnn, save_untrained_checkpoint
from worldmodels.config import ConfigError, load_config
from worldmodels.device import has_bf16
from worldmodels.dream import (
    DreamNoise,
    DreamSettings,
    DreamSimulator,
    DreamSimulatorSpec,
    DreamState,
    FusedM,
    HeadOutput,
    StartLatents,
    fuse_mdnrnn,
    head_output,
    load_start_latents,
    lstm_step,
    sample_mixture,
    settings_from_config,
    start_latents_digest,
)
from worldmodels.mdnrnn import MDNRNN, mdn_nll

Z, H, A = 4, 16, 2
EPISODES = 3


def write_starts(folder: Path) -> StartLatents:
    """Latents files of EPISODES episodes (5 frames each, first frames far apart); returns their first frames."""
    rng = np.random.default_rng(0)
    firsts = StartLatents(np.repeat(10.0 * np.arange(EPISODES, dtype=np.float32)[:, None], Z, axis=1),
                          np.full((EPISODES, Z), -8.0, np.float32))
    for index in range(EPISODES):
        mu = np.concatenate([firsts.mu[index : index + 1], rng.normal(size=(4, Z))]).astype(np.float32)
        logvar = np.concatenate([firsts.logvar[index : index + 1], np.zeros((4, Z))]).astype(np.float32)
        write_latents(episode_path(folder, index), mu, logvar)
        episode_path(folder, index).write_bytes(b"")  # the episode file the latents belong to
    return firsts


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """Untrained tiny V and M (reward and done heads) checkpoints and a latents folder in tmp_path."""
    save_untrained_checkpoint(tmp_path / "vae.pt", "vae", {"z_size": Z})
    torch.manual_seed(0)
    save_untrained_checkpoint(tmp_path / "mdnrnn.pt", "mdnrnn", {"z_size": Z, "action_size": A, "hidden_size": H,
                                                                 "reward_head": True, "done_head": True})
    write_starts(tmp_path / "episodes")
    return tmp_path


def simulator(run: Path, **settings: object) -> DreamSimulator:
    defaults: dict[str, object] = {"temperature": 1.3, "max_steps": 40}
    spec = DreamSimulatorSpec(run / "mdnrnn.pt", run / "episodes", run / "vae.pt",
                              DreamSettings(**{**defaults, **settings}), device="cpu")
    return spec()


def random_params(sim: DreamSimulator, count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1.0, (count, sim.num_params)).astype(np.float32)


def test_fused_step_matches_mdnrnn_step_and_an_inverse_cdf_draw(run: Path) -> None:
    sim = simulator(run)
    mdnrnn = load_mdnrnn(run / "mdnrnn.pt")
    generator = sim.generator(1)
    state = sim.start(5, generator)
    state = DreamState(state.z, torch.rand(1, 5, H) - 0.5, torch.randn(1, 5, H))
    action = torch.rand(5, A) * 2 - 1
    noise = sim.draw_noise(5, sim.generator(2))
    step = sim.step(state, action, noise)
    with torch.no_grad():
        expected = mdnrnn.step(state.z, action, (state.h, state.c))
    cdf = torch.softmax(expected.log_pi / 1.3, dim=-1).cumsum(dim=-1)  # (5, Z, K)
    k = (cdf[..., :-1] <= noise.component.unsqueeze(-1)).sum(dim=-1, keepdim=True)  # (5, Z, 1)
    sigma = expected.log_sigma.gather(-1, k).squeeze(-1).exp() * math.sqrt(1.3)  # (5, Z)
    expected_z = expected.mu.gather(-1, k).squeeze(-1) + sigma * noise.eps  # (5, Z)
    torch.testing.assert_close(step.state.h, expected.state[0])
    torch.testing.assert_close(step.state.c, expected.state[1])
    torch.testing.assert_close(step.reward, expected.reward)
    torch.testing.assert_close(step.done, expected.done_logit > 0)
    assert step.disagreement is None  # one M
    torch.testing.assert_close(step.state.z, expected_z)


def test_mixture_draws_follow_the_mixture_weights() -> None:
    count, logits = 20000, torch.tensor([0.0, 1.0, 2.0])
    head = HeadOutput(logits.view(1, 3, 1).expand(count, 3, 1),  # (B, K, Z): one dimension, three components
                      torch.tensor([-10.0, 0.0, 10.0]).view(1, 1, 3).expand(count, 1, 3),  # (B, Z, K)
                      torch.full((count, 1, 3), -10.0), None, None)
    generator = torch.Generator().manual_seed(0)
    z = sample_mixture(head, torch.rand(count, 1, generator=generator), torch.randn(count, 1, generator=generator))
    weights = torch.softmax(logits, dim=0)
    for mean, weight in zip((-10.0, 0.0, 10.0), weights.tolist()):
        share = float((z.round() == mean).float().mean())
        assert abs(share - weight) < 4 * math.sqrt(weight * (1 - weight) / count), (mean, share, weight)


def test_batched_steps_equal_single_dream_steps_with_the_same_noise(run: Path) -> None:
    sim = simulator(run, done_mode="sample")
    count = 6
    rows = sim.controller_rows(random_params(sim, count))
    generator = sim.generator(3)
    batch = sim.start(count, generator)
    singles = [batch.part(slice(i, i + 1)) for i in range(count)]
    for _ in range(4):
        noise = sim.draw_noise(count, generator)
        batched = sim.step(batch, sim.act(rows, batch), noise)
        for i in range(count):
            row = rows[i : i + 1]
            one = sim.step(singles[i], sim.act(row, singles[i]), DreamNoise(*(t[i : i + 1] for t in noise)))
            want = (*batched.state.part(slice(i, i + 1)), batched.reward[i : i + 1], batched.done[i : i + 1])
            for got, expected in zip((*one.state, one.reward, one.done), want):
                torch.testing.assert_close(got, expected)
            singles[i] = one.state
        batch = batched.state


def test_each_row_runs_its_own_controller(run: Path) -> None:
    sim = simulator(run, inputs="zch", bias=False)
    params = random_params(sim, 3)
    state = sim.start(3, sim.generator(0))
    actions = sim.act(sim.controller_rows(params), state)
    x = torch.cat([state.z, state.c[0], state.h[0]], dim=1)  # (3, Z + 2H), the "zch" input
    for i in range(3):
        sim.controller.set_flat(params[i])
        torch.testing.assert_close(actions[i], sim.controller.act(x[i : i + 1])[0])
    assert not torch.allclose(actions[0], actions[1])


def test_rollout_is_reproducible_and_shares_randomness_between_equal_seeds(run: Path) -> None:
    sim = pickle.loads(pickle.dumps(DreamSimulatorSpec(run / "mdnrnn.pt", run / "episodes", device="cpu")))()
    params = np.repeat(random_params(sim, 1), 4, axis=0)
    returns = sim.rollout(params, np.array([7, 8, 7, 9]))
    assert returns.dtype == np.float64 and returns.shape == (4,)
    np.testing.assert_array_equal(sim.run(params, np.array([7, 8, 7, 9])), returns)
    assert returns[0] == returns[2] and returns[0] != returns[1]
    lengths = sim.record(params, np.array([7, 8, 7, 9]), keep_z=False).lengths
    assert sim.dream_steps == 2 * lengths.sum() > 0  # the dream steps of both calls, counted
    with pytest.raises(ValueError, match="one seed per dream"):
        sim.rollout(params, np.array([1, 2]))
    with pytest.raises(ValueError, match="expected last axis"):
        sim.rollout(params[:, 1:], np.arange(4))


def test_matrix_products_without_onednn_give_the_same_steps(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = simulator(run)
    state = sim.start(6, sim.generator(0))
    action, noise = torch.rand(6, A) * 2 - 1, sim.draw_noise(6, sim.generator(1))
    expected = sim.step(state, action, noise)
    monkeypatch.setattr(dream_module, "_ONEDNN_LINEAR", None)  # torch's own matrix product (BLAS)
    step = sim.step(state, action, noise)
    for got, want in zip((*step.state, step.reward, step.done), (*expected.state, expected.reward, expected.done)):
        torch.testing.assert_close(got, want)


def test_chunked_cpu_steps_give_the_same_rollouts(run: Path) -> None:
    whole, chunked = simulator(run), simulator(run, cpu_chunk=3)
    params = random_params(whole, 8)
    expected = whole.record(params, np.arange(8))
    result = chunked.record(params, np.arange(8))
    np.testing.assert_allclose(result.returns, expected.returns, rtol=1e-5)
    np.testing.assert_allclose(result.z, expected.z, rtol=1e-4, atol=1e-5)


def with_dropout(mdnrnn: MDNRNN, rate: float) -> MDNRNN:
    """An M of ``mdnrnn``'s shape and weights, trained (as if) with dropout ``rate``, in eval mode."""
    args = {"z_size": mdnrnn.z_size, "action_size": mdnrnn.action_size, "hidden_size": mdnrnn.hidden_size,
            "num_mixtures": mdnrnn.num_mixtures, "reward_head": mdnrnn.reward_head is not None,
            "done_head": mdnrnn.done_head is not None}
    model = MDNRNN(**args, dropout=rate)
    model.load_state_dict(mdnrnn.state_dict())
    return model.eval()


def ending(run: Path, dropout: float = 0.0, **settings: object) -> DreamSimulator:
    """The run's M with a done head that ends dreams at various times (done sampled with probability
    sigmoid(5 w h - 3): about 5% a step, more or less with the controller's course, its actions weighing 5x in
    the LSTM), as trained with ``dropout``; max_steps 60."""
    mdnrnn = with_dropout(load_mdnrnn(run / "mdnrnn.pt"), dropout)
    with torch.no_grad():
        mdnrnn.lstm.weight_ih_l0[:, Z : Z + A] *= 5.0
        mdnrnn.done_head.weight.mul_(5.0)
        mdnrnn.done_head.bias.fill_(-3.0)
    defaults: dict[str, object] = {"temperature": 1.3, "max_steps": 60, "done_mode": "sample", "check_every": 3}
    return DreamSimulator(mdnrnn, load_start_latents(run / "episodes"), DreamSettings(**{**defaults, **settings}))


def test_dropping_ended_dreams_keeps_every_return_and_latent(run: Path) -> None:
    params, seeds = random_params(ending(run), 64), np.arange(64) % 24  # some seeds shared
    masked = ending(run, compact_below=0.0).record(params, seeds)
    assert masked.lengths.min() < 20 and masked.lengths.max() == 60  # dreams end at various times, some never
    for compact_below in (0.9, 1.0):
        result = ending(run, compact_below=compact_below).record(params, seeds)
        # equal up to the rounding of matrix products of another batch size (bit-identical through oneDNN)
        np.testing.assert_array_equal(result.lengths, masked.lengths)
        np.testing.assert_allclose(result.returns, masked.returns, rtol=1e-5)
        assert result.z is not None and masked.z is not None and result.z.shape == masked.z.shape == (64, 61, Z)
        for i, length in enumerate(result.lengths):
            np.testing.assert_allclose(result.z[i, : length + 1], masked.z[i, : length + 1], rtol=1e-4, atol=1e-5)
    for i, length in enumerate(result.lengths):  # compact_below 1: dropped at the first check after its end
        dropped = -(-length // 3) * 3  # trace index of the first step it was not stepped in, minus one
        np.testing.assert_array_equal(result.z[i, dropped:], np.broadcast_to(result.z[i, dropped], (61 - dropped, Z)))


def test_a_dream_does_not_depend_on_when_the_other_dreams_end(run: Path) -> None:
    sim = ending(run)
    params, others = random_params(sim, 32, seed=0), random_params(sim, 32, seed=1)
    others[0] = params[0]
    first, second = sim.record(params, np.arange(32)), sim.record(others, np.arange(32))
    assert (first.lengths[1:] != second.lengths[1:]).sum() >= 8  # the batch-mates end at other times
    length = first.lengths[0]
    assert second.lengths[0] == length
    np.testing.assert_allclose(second.returns[0], first.returns[0], rtol=1e-5)
    np.testing.assert_allclose(second.z[0, : length + 1], first.z[0, : length + 1], rtol=1e-4, atol=1e-5)


def needs_bf16() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not has_bf16(torch.device("cpu")), reason="this CPU has no bf16 arithmetic")


@needs_bf16()
def test_bfloat16_dreams_are_deterministic_and_score_as_float32_dreams(run: Path) -> None:
    half = ending(run, precision="bfloat16")
    params, seeds = random_params(half, 400), np.arange(400)
    result = half.record(params, seeds, keep_z=False)
    np.testing.assert_array_equal(half.rollout(params, seeds), result.returns)
    full = ending(run).rollout(params, seeds)
    assert not np.array_equal(full, result.returns)  # another arithmetic
    error = math.sqrt((full.var() + result.returns.var()) / len(seeds))
    assert abs(result.returns.mean() - full.mean()) < 3 * error, (result.returns.mean(), full.mean(), error)


def fused_nll(m: FusedM, z: torch.Tensor, actions: torch.Tensor) -> float:
    """M's mixture NLL (nats per latent dimension) of every z_{t+1} of sequences z (B, T + 1, Z) given the real
    z_t and actions (B, T, A), stepping M's fused weights (at temperature 1)."""
    h = c = torch.zeros(len(z), m.hidden_size)  # (B, H)
    nlls = []
    for t in range(actions.shape[1]):
        h, c = lstm_step(m, z[:, t], actions[:, t], h, c)
        head = head_output(m, h)
        log_pi = head.logits.float().log_softmax(dim=1).transpose(1, 2)  # (B, Z, K)
        nlls.append(mdn_nll(z[:, t + 1, None], log_pi[:, None], head.mu.float()[:, None],
                            head.log_sigma.float()[:, None]))
    return float(torch.stack(nlls).mean())


@needs_bf16()
def test_bfloat16_m_predicts_real_latents_as_well_as_float32(tmp_path: Path) -> None:
    files = write_synthetic_episodes(tmp_path, 6, 40)
    arrays = [read_arrays(file, ("observations", "actions")) for file in files]
    z = torch.as_tensor(np.stack([projected_latents(a["observations"], 8)[0] for a in arrays]))  # (6, 41, 8)
    actions = torch.as_tensor(np.stack([a["actions"] for a in arrays]))  # (6, 40, 3)
    torch.manual_seed(0)
    mdnrnn = MDNRNN(8, 3, 64)
    with torch.no_grad():
        untrained = fused_nll(fuse_mdnrnn(mdnrnn, "cpu"), z, actions)
    optimizer = torch.optim.Adam(mdnrnn.parameters(), lr=1e-2)
    for _ in range(150):
        out = mdnrnn(z[:, :-1], actions)
        loss = mdn_nll(z[:, 1:], out.log_pi, out.mu, out.log_sigma)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = mdnrnn(z[:, :-1], actions)
        trained = float(mdn_nll(z[:, 1:], out.log_pi, out.mu, out.log_sigma))
        full = fused_nll(fuse_mdnrnn(mdnrnn, "cpu"), z, actions)
        half = fused_nll(fuse_mdnrnn(mdnrnn, "cpu", dtype=torch.bfloat16), z, actions)
    assert trained < untrained - 1.0  # learnt
    assert abs(full - trained) < 1e-4  # the fused step is M
    assert abs(half - full) < 0.02, (half, full)


def test_precision_is_a_checked_setting(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        DreamSettings(precision="float16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compact_below must be in"):
        DreamSettings(compact_below=1.5)
    assert settings_from_config(load_config("carracing", ["dream.precision=bfloat16"])).precision == "bfloat16"
    with pytest.raises(ConfigError, match="dream.precision"):
        load_config("carracing", ["dream.precision=float16"])
    monkeypatch.setattr(dream_module, "has_bf16", lambda device: False)
    with pytest.raises(ValueError, match="needs bf16 arithmetic.*dream.precision to 'float32'"):
        simulator(run, precision="bfloat16")


def scripted_mdnrnn(reward_head: bool = True, done_weight: float = -10.0, done_bias: float = 2.0) -> MDNRNN:
    """An M whose LSTM reads only the first action dimension, a: every gate is 0.5 but g = tanh(3a), so
    h_t = 0.5 tanh(c_t) grows with t towards its limit; reward 1; done logit = done_weight * h_t[0] + done_bias.

    With the defaults, a = 0.3 gives done logits 0.28 at step 1 and < -0.4 after (done at step 1 only),
    a = 0.99 gives -0.30 and lower (never done).
    """
    mdnrnn = MDNRNN(Z, A, H, reward_head=reward_head, done_head=True)
    with torch.no_grad():
        for parameter in mdnrnn.parameters():
            parameter.zero_()
        mdnrnn.lstm.weight_ih_l0[2 * H : 3 * H, Z] = 3.0  # g rows, action column 0
        if mdnrnn.reward_head is not None:
            mdnrnn.reward_head.bias.fill_(1.0)
        mdnrnn.done_head.weight[0, 0] = done_weight
        mdnrnn.done_head.bias.fill_(done_bias)
    return mdnrnn


def constant_actions(sim: DreamSimulator, first: list[float]) -> np.ndarray:
    """Controller rows (one per entry) of an "z" controller acting a = (first[i], 0, ...) whatever it sees."""
    params = np.zeros((len(first), sim.num_params), np.float32)
    params[:, -sim.action_size] = np.arctanh(first)  # the bias of action dimension 0
    return params


def scripted(tmp_path: Path, reward_head: bool = True, **settings: object) -> DreamSimulator:
    write_starts(tmp_path)
    settings = {"inputs": "z", "max_steps": 10, **settings}
    return DreamSimulator(scripted_mdnrnn(reward_head), load_start_latents(tmp_path), DreamSettings(**settings))


def test_a_done_dream_stops_accumulating_and_stays_done(tmp_path: Path) -> None:
    sim = scripted(tmp_path)
    result = sim.record(constant_actions(sim, [0.3, 0.99]), np.array([0, 1]))
    np.testing.assert_array_equal(result.lengths, [1, 10])  # dream 0: done at step 1 only, and stays ended
    np.testing.assert_array_equal(result.returns, [1.0, 10.0])
    assert result.z is not None and result.z.shape == (2, 11, Z)


def test_rollout_stops_at_the_first_check_after_every_dream_ended(tmp_path: Path) -> None:
    sim = scripted(tmp_path, check_every=4)
    result = sim.record(constant_actions(sim, [0.3, 0.3]), np.array([0, 1]))
    np.testing.assert_array_equal(result.lengths, [1, 1])
    assert result.z is not None and result.z.shape == (2, 5, Z)


def test_survival_reward_counts_live_steps_with_a_done_head_only(tmp_path: Path) -> None:
    sim = scripted(tmp_path, reward_head=False, reward_mode="survival")
    np.testing.assert_array_equal(sim.rollout(constant_actions(sim, [0.3, 0.99, 0.99]), np.arange(3)), [1, 10, 10])


def test_sampled_done_ends_dreams_with_the_predicted_probability(tmp_path: Path) -> None:
    write_starts(tmp_path)
    settings = DreamSettings(inputs="z", max_steps=50, reward_mode="survival")
    mdnrnn = scripted_mdnrnn(done_weight=0.0, done_bias=0.0)  # done logit 0: probability 1/2 per step
    logit = DreamSimulator(mdnrnn, load_start_latents(tmp_path), settings)
    sample = DreamSimulator(mdnrnn, load_start_latents(tmp_path), replace(settings, done_mode="sample"))
    params = constant_actions(logit, [0.5] * 400)
    np.testing.assert_array_equal(logit.rollout(params, np.arange(400)), 50.0)  # a logit of 0 is not > 0
    lengths = sample.rollout(params, np.arange(400))
    assert 1.8 < lengths.mean() < 2.2 and lengths.min() == 1  # geometric, mean 2


def test_reward_modes_need_the_heads(tmp_path: Path) -> None:
    write_starts(tmp_path)
    starts = load_start_latents(tmp_path)
    with pytest.raises(ValueError, match="reward_mode 'head' needs M with a reward head"):
        DreamSimulator(MDNRNN(Z, A, H), starts)
    survival = DreamSimulator(MDNRNN(Z, A, H), starts, DreamSettings(reward_mode="survival", max_steps=3))
    with pytest.raises(ValueError, match="needs M with a done head"):
        survival.rollout(np.zeros((1, survival.num_params)), np.array([0]))
    assert survival.record(np.zeros((1, survival.num_params)), np.array([0])).lengths[0] == 3


def test_dreams_start_from_stored_first_frames(tmp_path: Path) -> None:
    firsts = write_starts(tmp_path)
    starts = load_start_latents(tmp_path)
    np.testing.assert_array_equal(starts.mu, firsts.mu)
    np.testing.assert_array_equal(starts.logvar, firsts.logvar)
    assert len(load_start_latents(tmp_path, max_episodes=2).mu) == 2
    sim = DreamSimulator(MDNRNN(Z, A, H, reward_head=True), starts)
    z = sim.start(60, sim.generator(0)).z.numpy()  # (60, Z)
    nearest = np.abs(z[:, None, :] - firsts.mu[None]).max(axis=2).min(axis=1)
    assert nearest.max() < 0.1  # every z within a few sigma (0.018) of one of the first frames
    assert len(np.unique(np.round(z[:, 0] / 10))) == EPISODES  # all episodes are used


def test_the_start_latents_digest_follows_their_content_not_their_folder(tmp_path: Path) -> None:
    write_starts(tmp_path / "a")
    write_starts(tmp_path / "b")
    digest = start_latents_digest(tmp_path / "a")
    assert len(digest) == 64 and start_latents_digest(tmp_path / "b") == digest
    assert start_latents_digest(tmp_path / "a", max_episodes=2) != digest
    first = episode_path(tmp_path / "b", 0)
    mu, logvar = read_latents(first)
    write_latents(first, mu + 1e-3, logvar)  # encoded again, a little differently
    assert start_latents_digest(tmp_path / "b") != digest


def test_decode_draws_frames(run: Path) -> None:
    sim = simulator(run)
    result = sim.record(random_params(sim, 1), np.array([0]))
    frames = sim.decode(result.z[0, :3])
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8


def env_kwargs(run: Path) -> dict[str, object]:
    return {"mdnrnn_path": run / "mdnrnn.pt", "latents_folder": run / "episodes", "vae_path": run / "vae.pt",
            "device": "cpu"}


@pytest.mark.filterwarnings("ignore:.*Box observation space m")  # z and c are unbounded: the bounds are infinite
def test_dream_env_passes_the_checker_and_renders(run: Path) -> None:
    env = gymnasium.make("worldmodels/Dream-v0", **env_kwargs(run), render_mode="rgb_array")
    assert isinstance(env.unwrapped, DreamEnv)
    check_env(env.unwrapped)
    assert env.observation_space.shape == (Z + H,) and env.action_space.shape == (A,)
    made = gymnasium.make("worldmodels/Dream-v0", **env_kwargs(run), observation="zch", render_mode="rgb_array")
    observation, _ = made.reset(seed=0)
    assert observation.shape == (Z + 2 * H,) and observation.dtype == np.float32
    frame = made.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="pass vae_path"):
        DreamEnv(run / "mdnrnn.pt", run / "episodes", render_mode="rgb_array")


def test_dream_vector_env_steps_and_autoresets_next_step(run: Path) -> None:
    save_untrained_checkpoint(run / "mdnrnn.pt", "mdnrnn", {"z_size": Z, "action_size": A, "hidden_size": H})
    envs_ = gymnasium.make_vec("worldmodels/Dream-v0", 3, **env_kwargs(run), max_episode_steps=2,
                               reward_mode="survival", render_mode="rgb_array")  # no done head: never terminates
    assert isinstance(envs_.unwrapped, DreamVectorEnv)
    assert envs_.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    observations, _ = envs_.reset(seed=0)
    assert observations.shape == (3, Z + H) and observations.dtype == np.float32
    assert envs_.observation_space.contains(observations)
    actions = envs_.action_space.sample()
    rewards, truncations = [], []
    for _ in range(3):
        observations, reward, terminated, truncated, _ = envs_.step(actions)
        assert observations.shape == (3, Z + H) and reward.shape == terminated.shape == truncated.shape == (3,)
        assert terminated.dtype == truncated.dtype == np.bool_
        rewards.append(reward)
        truncations.append(truncated)
    np.testing.assert_array_equal(rewards, [[1, 1, 1], [1, 1, 1], [0, 0, 0]])  # step 3 restarts every dream
    np.testing.assert_array_equal(truncations, [[False] * 3, [True] * 3, [False] * 3])
    frames = envs_.render()
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    envs_.close()


def test_importing_envs_does_not_import_worldmodels() -> None:
    code = "import sys, envs; assert not any(m.startswith('worldmodels') for m in sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_masked_fused_step_matches_mdnrnn_step_with_the_same_mask(run: Path) -> None:
    mdnrnn = with_dropout(load_mdnrnn(run / "mdnrnn.pt"), 0.4)
    sim = DreamSimulator(mdnrnn, load_start_latents(run / "episodes"), DreamSettings(dropout_mask=True))
    generator = sim.generator(1)
    state = sim.start(5, generator)
    masks = sim.draw_dropout_masks(5, generator)  # (5, Z + A + H)
    assert masks is not None and masks.shape == (5, Z + A + H)
    torch.testing.assert_close(masks[:, Z : Z + A], torch.ones(5, A))  # the action is never dropped
    state = DreamState(state.z, torch.rand(1, 5, H) - 0.5, torch.randn(1, 5, H))
    action = torch.rand(5, A) * 2 - 1
    step = sim.step(state, action, sim.draw_noise(5, generator), masks)
    unmasked = sim.step(state, action, sim.draw_noise(5, sim.generator(2)))
    with torch.no_grad():
        model_mask = torch.cat([masks[:, :Z], masks[:, Z + A :]], dim=1)  # (5, Z + H): M's [z, h] mask
        expected = mdnrnn.step(state.z, action, (state.h, state.c), model_mask)
    torch.testing.assert_close(step.state.h, expected.state[0])
    torch.testing.assert_close(step.state.c, expected.state[1])
    torch.testing.assert_close(step.reward, expected.reward)
    assert not torch.allclose(step.state.h, unmasked.state.h)


def test_dropout_dreams_replay_their_seeds_and_differ_from_plain_dreams(run: Path) -> None:
    masked, plain = ending(run, 0.3, dropout_mask=True), ending(run, 0.3)
    params, seeds = random_params(masked, 48), np.arange(48) % 16  # some seeds shared
    first = masked.record(params, seeds)
    again = masked.record(params, seeds)
    np.testing.assert_array_equal(again.returns, first.returns)
    np.testing.assert_array_equal(again.lengths, first.lengths)
    np.testing.assert_array_equal(again.z, first.z)
    unmasked = plain.record(params, seeds)
    np.testing.assert_array_equal(unmasked.z[:, 0], first.z[:, 0])  # the same starts (drawn before the masks)
    assert (np.abs(unmasked.z[:, 1:] - first.z[:, 1:]).max(axis=(1, 2)) > 1e-3).all()  # every dream has its own M
    assert not np.array_equal(unmasked.lengths, first.lengths)
    untouched = ending(run).record(params, seeds)  # the plain dream of an M without dropout is unchanged by it
    np.testing.assert_array_equal(untouched.returns, unmasked.returns)


def test_a_dream_holds_one_mask_for_its_episode_and_shares_it_with_its_seed(
        run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = ending(run, 0.3, dropout_mask=True, compact_below=0.0)  # rows stay put: row i is dream i
    used: list[torch.Tensor] = []
    step = sim.step

    def spy(state: DreamState, action: torch.Tensor, noise: DreamNoise, mask: torch.Tensor | None = None,
            member: torch.Tensor | None = None) -> object:
        assert mask is not None and member is None
        used.append(mask.clone())
        return step(state, action, noise, mask, member)

    monkeypatch.setattr(sim, "step", spy)
    seeds = np.array([3, 4, 3, 5, 6, 7])
    sim.record(random_params(sim, 6), seeds)
    assert len(used) > 10
    for mask in used[1:]:
        torch.testing.assert_close(mask, used[0], rtol=0, atol=0)  # held for the whole episode
    mask = used[0]  # (6, Z + A + H)
    torch.testing.assert_close(mask[0], mask[2], rtol=0, atol=0)  # a shared seed, a shared mask
    distinct = mask[[0, 1, 3, 4, 5]]
    assert all(not torch.equal(distinct[i], distinct[j]) for i in range(5) for j in range(i))
    torch.testing.assert_close(mask[:, Z : Z + A], torch.ones(6, A))  # the action's columns
    kept = torch.cat([mask[:, :Z], mask[:, Z + A :]], dim=1)  # (6, Z + H): M's [z, h] mask
    torch.testing.assert_close(kept.unique(), torch.tensor([0.0, 1 / 0.7]))


def test_dropping_ended_dreams_keeps_each_dreams_mask(run: Path) -> None:
    params, seeds = random_params(ending(run), 64), np.arange(64) % 24
    masked = ending(run, 0.3, dropout_mask=True, compact_below=0.0).record(params, seeds)
    assert masked.lengths.min() < 20 and masked.lengths.max() == 60
    result = ending(run, 0.3, dropout_mask=True, compact_below=1.0).record(params, seeds)
    np.testing.assert_array_equal(result.lengths, masked.lengths)
    np.testing.assert_allclose(result.returns, masked.returns, rtol=1e-5)
    chunked = ending(run, 0.3, dropout_mask=True, cpu_chunk=5).record(params, seeds)
    np.testing.assert_array_equal(chunked.lengths, masked.lengths)


def test_dropout_dreams_need_m_trained_with_dropout(run: Path) -> None:
    with pytest.raises(ValueError, match="dropout_mask needs M trained with dropout"):
        ending(run, dropout_mask=True)
    assert settings_from_config(load_config("doom", ["dream.dropout_mask=true"])).dropout_mask
