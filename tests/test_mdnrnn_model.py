"""Tests of M, the MDN-RNN: parameter count, shapes, step/sequence agreement, the mixture
likelihood against an independent float64 computation, sampling temperature, the loss, and dropout."""

import math

import numpy as np
import pytest
import torch

from worldmodels.mdnrnn import (
    MDNRNN,
    MDNRNNLoss,
    MDNRNNOutput,
    draw_dropout_mask,
    mdn_nll,
    mdnrnn_loss,
    sample_next_z,
)

B, T, Z, A, K = 3, 6, 4, 2, 5


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def random_mixture(generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random normalized per-dimension mixtures: log_pi, mu, log_sigma, each (B, T, Z, K)."""
    log_pi = torch.log_softmax(torch.randn(B, T, Z, K, generator=generator), dim=-1)
    mu = torch.randn(B, T, Z, K, generator=generator)
    log_sigma = 0.5 * torch.randn(B, T, Z, K, generator=generator)
    return log_pi, mu, log_sigma


def test_parameter_count_matches_paper() -> None:
    model = MDNRNN(z_size=32, action_size=3, hidden_size=256, num_mixtures=5)
    assert count_params(model) == 422_368


def test_each_head_adds_one_linear_unit() -> None:
    base = count_params(MDNRNN())
    both = count_params(MDNRNN(reward_head=True, done_head=True))
    assert both - base == 2 * (256 + 1)


def test_lstm_has_single_bias_as_constant_input() -> None:
    model = MDNRNN(z_size=Z, action_size=A, hidden_size=8)
    assert model.lstm.bias is False
    assert model.lstm.input_size == Z + A + 1


def test_forward_shapes_and_dtypes() -> None:
    model = MDNRNN(Z, A, hidden_size=16, num_mixtures=K, reward_head=True, done_head=True)
    out = model(torch.randn(B, T, Z), torch.randn(B, T, A))
    assert isinstance(out, MDNRNNOutput)
    for t in (out.log_pi, out.mu, out.log_sigma):
        assert t.shape == (B, T, Z, K) and t.dtype == torch.float32
    assert out.reward.shape == out.done_logit.shape == (B, T)
    h, c = out.state
    assert h.shape == c.shape == (1, B, 16)
    torch.testing.assert_close(out.log_pi.exp().sum(-1), torch.ones(B, T, Z))


def test_no_heads_gives_none() -> None:
    out = MDNRNN(z_size=Z, action_size=A, hidden_size=8)(torch.randn(B, T, Z), torch.randn(B, T, A))
    assert out.reward is None and out.done_logit is None


def test_step_by_step_matches_sequence_forward() -> None:
    torch.manual_seed(0)
    model = MDNRNN(Z, A, hidden_size=16, num_mixtures=K, reward_head=True, done_head=True)
    z, action = torch.randn(B, T, Z), torch.randn(B, T, A)
    full = model(z, action)
    state = model.initial_state(B)
    assert state[0].shape == state[1].shape == (1, B, 16)
    steps = []
    for t in range(T):
        out = model.step(z[:, t], action[:, t], state)
        state = out.state
        steps.append(out)
    assert steps[0].log_pi.shape == (B, Z, K) and steps[0].reward.shape == (B,)
    for name in ("log_pi", "mu", "log_sigma", "reward", "done_logit"):
        stepped = torch.stack([getattr(o, name) for o in steps], dim=1)
        torch.testing.assert_close(stepped, getattr(full, name), atol=1e-5, rtol=0)
    for stepped, whole in zip(state, full.state):
        torch.testing.assert_close(stepped, whole, atol=1e-5, rtol=0)


def test_mdn_nll_matches_independent_float64_computation() -> None:
    g = torch.Generator().manual_seed(1)
    log_pi, mu, log_sigma = random_mixture(g)
    target = torch.randn(B, T, Z, generator=g)
    pi, m, s, x = (np.exp(log_pi.double().numpy()), mu.double().numpy(),
                   np.exp(log_sigma.double().numpy()), target.double().numpy())
    nlls = []
    for idx in np.ndindex(B, T, Z):
        density = sum(
            pi[idx][k] * math.exp(-0.5 * ((x[idx] - m[idx][k]) / s[idx][k]) ** 2)
            / (s[idx][k] * math.sqrt(2 * math.pi))
            for k in range(K)
        )
        nlls.append(-math.log(density))
    expected = float(np.mean(nlls))
    got = mdn_nll(target, log_pi, mu, log_sigma).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_mdn_nll_ignores_masked_steps() -> None:
    g = torch.Generator().manual_seed(2)
    log_pi, mu, log_sigma = random_mixture(g)
    target = torch.randn(B, T, Z, generator=g)
    mask = torch.ones(B, T)
    mask[:, 4:] = 0
    expected = mdn_nll(target[:, :4], log_pi[:, :4], mu[:, :4], log_sigma[:, :4])
    target[:, 4:] = 1e6
    torch.testing.assert_close(mdn_nll(target, log_pi, mu, log_sigma, mask), expected)
    torch.testing.assert_close(mdn_nll(target, log_pi, mu, log_sigma, mask.bool()), expected)


def test_low_temperature_samples_most_likely_mean() -> None:
    g = torch.Generator().manual_seed(3)
    log_pi, mu, log_sigma = random_mixture(g)
    z = sample_next_z(log_pi, mu, torch.zeros_like(log_sigma), temperature=1e-4, generator=g)
    assert z.shape == (B, T, Z)
    best_mean = mu.gather(-1, log_pi.argmax(-1, keepdim=True)).squeeze(-1)
    torch.testing.assert_close(z, best_mean, atol=0.05, rtol=0)


def test_sampling_is_reproducible_with_generator() -> None:
    log_pi, mu, log_sigma = random_mixture(torch.Generator().manual_seed(4))
    z1 = sample_next_z(log_pi, mu, log_sigma, 1.0, torch.Generator().manual_seed(5))
    z2 = sample_next_z(log_pi, mu, log_sigma, 1.0, torch.Generator().manual_seed(5))
    torch.testing.assert_close(z1, z2)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_non_positive_temperature_raises(temperature: float) -> None:
    log_pi, mu, log_sigma = random_mixture(torch.Generator().manual_seed(6))
    with pytest.raises(ValueError, match="temperature"):
        sample_next_z(log_pi, mu, log_sigma, temperature)


def test_done_pos_weight_scales_positive_targets() -> None:
    torch.manual_seed(0)
    model = MDNRNN(z_size=Z, action_size=A, hidden_size=8, num_mixtures=K, done_head=True)
    out = model(torch.randn(B, T, Z), torch.randn(B, T, A))
    target_z, done = torch.randn(B, T, Z), torch.ones(B, T)
    weight_1 = mdnrnn_loss(out, target_z, target_done=done, done_pos_weight=1.0)
    weight_10 = mdnrnn_loss(out, target_z, target_done=done, done_pos_weight=10.0)
    torch.testing.assert_close(weight_10.done, 10 * weight_1.done)


def test_loss_terms_without_heads_are_zero_and_masked_with_heads() -> None:
    torch.manual_seed(0)
    target_z, reward, done = torch.randn(B, T, Z), torch.randn(B, T), torch.zeros(B, T)
    out = MDNRNN(z_size=Z, action_size=A, hidden_size=8)(torch.randn(B, T, Z), torch.randn(B, T, A))
    loss = mdnrnn_loss(out, target_z, reward, done)
    assert isinstance(loss, MDNRNNLoss)
    assert loss.reward.item() == 0.0 and loss.done.item() == 0.0
    torch.testing.assert_close(loss.total, loss.z_nll)

    model = MDNRNN(z_size=Z, action_size=A, hidden_size=8, reward_head=True, done_head=True)
    out = model(torch.randn(B, T, Z), torch.randn(B, T, A))
    mask = torch.ones(B, T)
    mask[:, -2:] = 0
    loss = mdnrnn_loss(out, target_z, reward, done, mask=mask, reward_weight=2.0)
    garbage_reward = reward.clone()
    garbage_reward[:, -2:] = 1e6
    masked = mdnrnn_loss(out, target_z, garbage_reward, done, mask=mask, reward_weight=2.0)
    torch.testing.assert_close(masked.total, loss.total)
    expected_reward = (out.reward[:, :-2] - reward[:, :-2]).pow(2).mean()
    torch.testing.assert_close(loss.reward, expected_reward)
    torch.testing.assert_close(loss.total, loss.z_nll + 2.0 * loss.reward + loss.done)


def test_training_lowers_loss_on_predictable_sequences() -> None:
    torch.manual_seed(0)
    z_size = action_size = 3
    action = torch.randn(16, 21, action_size)
    z = torch.zeros(16, 21, z_size)
    z[:, 0] = torch.randn(16, z_size)
    for t in range(20):
        z[:, t + 1] = 0.9 * z[:, t] + 0.1 * action[:, t]
    model = MDNRNN(z_size=z_size, action_size=action_size, hidden_size=32, num_mixtures=K)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        out = model(z[:, :-1], action[:, :-1])
        loss = mdnrnn_loss(out, z[:, 1:]).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < losses[0] - 1.0, losses


def test_sample_step_draws_next_z_and_heads_at_temperature() -> None:
    torch.manual_seed(0)
    model = MDNRNN(z_size=4, action_size=2, hidden_size=16, num_mixtures=3, reward_head=True, done_head=True)
    z, action = torch.randn(5, 4), torch.randn(5, 2)
    state = model.initial_state(5)
    sample = model.sample(z, action, state, temperature=1e-8, generator=torch.Generator().manual_seed(1))
    out = model.step(z, action, state)
    assert sample.z.shape == (5, 4) and sample.reward.shape == (5,) and sample.done.dtype == torch.bool
    best = out.log_pi.argmax(-1, keepdim=True)  # (B, Z, 1)
    torch.testing.assert_close(sample.z, out.mu.gather(-1, best).squeeze(-1), atol=1e-3, rtol=0)
    torch.testing.assert_close(sample.done, out.done_logit > 0)
    torch.testing.assert_close(sample.state[0], out.state[0])
    again = model.sample(z, action, state, temperature=1.0, generator=torch.Generator().manual_seed(1))
    same = model.sample(z, action, state, temperature=1.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.z, same.z)
    assert MDNRNN(z_size=4, action_size=2, hidden_size=16).sample(z, action, state, 1.0).done is None


def assert_same_output(got: MDNRNNOutput, want: MDNRNNOutput) -> None:
    for name in ("log_pi", "mu", "log_sigma", "reward", "done_logit"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=1e-5, rtol=0)
    for a, b in zip(got.state, want.state):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_dropout_is_off_in_eval_mode_and_a_mask_of_ones_is_the_plain_lstm() -> None:
    torch.manual_seed(0)
    model = MDNRNN(Z, A, hidden_size=16, num_mixtures=K, reward_head=True, done_head=True, dropout=0.3).eval()
    plain = MDNRNN(Z, A, hidden_size=16, num_mixtures=K, reward_head=True, done_head=True)
    plain.load_state_dict(model.state_dict())
    z, action = torch.randn(B, T, Z), torch.randn(B, T, A)
    state = (torch.randn(1, B, 16), torch.randn(1, B, 16))
    expected = plain(z, action, state)
    assert_same_output(model(z, action, state), expected)  # eval mode: no dropout
    assert_same_output(model(z, action, state, torch.ones(B, Z + 16)), expected)  # the step loop is nn.LSTM's math
    model.train()
    first, second = model(z, action, state), model(z, action, state)
    assert not torch.allclose(first.mu, second.mu)  # training mode: a fresh mask per call


def test_a_dropout_mask_drops_z_and_the_previous_h_and_is_held_over_the_sequence() -> None:
    torch.manual_seed(0)
    H = 16
    model = MDNRNN(Z, A, hidden_size=H, num_mixtures=K, done_head=True, dropout=0.5).eval()
    z, action = torch.randn(B, T, Z), torch.randn(B, T, A)
    mask = draw_dropout_mask(B, Z, H, 0.5, torch.Generator().manual_seed(1))  # (B, Z + H)
    full = model(z, action, dropout_mask=mask)
    state = model.initial_state(B)
    for t in range(T):  # the same mask passed at every step is the sequence's mask
        out = model.step(z[:, t], action[:, t], state, mask)
        torch.testing.assert_close(out.mu, full.mu[:, t], atol=1e-5, rtol=0)
        state = out.state
    dropped_z = mask[:, :Z] == 0  # (B, Z)
    changed = z + 5.0 * dropped_z.unsqueeze(1)  # change only the dropped dimensions of z
    torch.testing.assert_close(model(changed, action, dropout_mask=mask).mu, full.mu)
    h_only = mask.clone()
    h_only[:, :Z] = 1.0  # drop only h_{t-1}: the first step (h_0 = 0) is unchanged, later ones are not
    unmasked, masked_h = model(z, action), model(z, action, dropout_mask=h_only)
    torch.testing.assert_close(masked_h.mu[:, 0], unmasked.mu[:, 0])
    assert not torch.allclose(masked_h.mu[:, 1:], unmasked.mu[:, 1:])


def test_dropout_masks_keep_inputs_with_probability_one_minus_p_and_scale_them() -> None:
    mask = draw_dropout_mask(400, 8, 42, 0.2, torch.Generator().manual_seed(0))
    assert mask.shape == (400, 50) and mask.dtype == torch.float32
    torch.testing.assert_close(mask.unique(), torch.tensor([0.0, 1 / 0.8]))
    dropped = float((mask == 0).float().mean())
    assert abs(dropped - 0.2) < 4 * math.sqrt(0.2 * 0.8 / mask.numel()), dropped
    with pytest.raises(ValueError, match="dropout must be in"):
        MDNRNN(dropout=1.0)


def test_training_with_dropout_lowers_loss_on_predictable_sequences() -> None:
    torch.manual_seed(0)
    action = torch.randn(16, 21, 3)
    z = torch.zeros(16, 21, 3)
    z[:, 0] = torch.randn(16, 3)
    for t in range(20):
        z[:, t + 1] = 0.9 * z[:, t] + 0.1 * action[:, t]
    model = MDNRNN(z_size=3, action_size=3, hidden_size=32, num_mixtures=K, dropout=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = mdnrnn_loss(model(z[:, :-1], action[:, :-1]), z[:, 1:]).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < np.mean(losses[:3]) - 1.0, losses
    with torch.no_grad():
        evaluated = mdnrnn_loss(model.eval()(z[:, :-1], action[:, :-1]), z[:, 1:]).total.item()
    assert evaluated < np.mean(losses[:3]) - 1.0, evaluated
