"""C: parameter count, flat vector round trip, batched and per-row actions, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodels.controller import Controller


def test_carracing_controller_has_the_papers_867_parameters():
    assert Controller(32, 256, 3, "zh", bias=True).num_params == 867
    assert Controller(32, 256, 3, "z", bias=True).num_params == 99
    assert Controller(64, 512, 3, "zh", bias=False).num_params == 1728


def test_doom_controller_on_z_c_h_without_bias_has_1088_parameters():
    assert Controller(64, 512, 1, "zch", bias=False).num_params == 1088


def test_flat_vector_round_trips_and_defines_the_action():
    controller = Controller(4, 6, 3, "zh")
    params = np.random.default_rng(0).normal(size=controller.num_params).astype(np.float32)
    controller.set_flat(params)
    np.testing.assert_array_equal(controller.get_flat(), params)
    x = torch.randn(5, 10)
    weight, bias = params[:30].reshape(3, 10), params[30:]
    expected = np.tanh(x.numpy() @ weight.T + bias)
    actions = controller.act(x)
    assert actions.shape == (5, 3)
    np.testing.assert_allclose(actions.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_hidden_layer_controller_has_the_ablation_size_and_the_two_layer_action():
    assert Controller(32, 256, 3, "z", hidden_units=40).num_params == 32 * 40 + 40 + 40 * 3 + 3  # 1,443
    controller = Controller(4, 6, 2, "z", hidden_units=5)
    params = np.random.default_rng(2).normal(size=controller.num_params).astype(np.float32)
    controller.set_flat(params)
    w1, b1 = params[:20].reshape(5, 4), params[20:25]
    w2, b2 = params[25:35].reshape(2, 5), params[35:]
    x = torch.randn(7, 4)
    expected = np.tanh(np.tanh(x.numpy() @ w1.T + b1) @ w2.T + b2)
    np.testing.assert_allclose(controller.act(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="hidden_units must be >= 0"):
        Controller(4, 6, 2, "z", hidden_units=-1)


@pytest.mark.parametrize("hidden_units", [0, 5])
def test_act_population_uses_each_rows_own_parameters(hidden_units):
    controller = Controller(4, 6, 3, "zh", bias=False, hidden_units=hidden_units)
    rng = np.random.default_rng(1)
    params = torch.from_numpy(rng.normal(size=(5, controller.num_params)).astype(np.float32))
    x = torch.randn(5, 10)
    actions = controller.act_population(params, x)
    assert actions.shape == (5, 3)
    for row in range(5):
        controller.set_flat(params[row])
        torch.testing.assert_close(actions[row], controller.act(x[row : row + 1])[0])


def test_features_follow_the_inputs_setting():
    z, h = torch.randn(2, 4), torch.randn(2, 6)
    assert Controller(4, 6, 3, "zh").features(z, h).shape == (2, 10)
    assert Controller(4, 6, 3, "z").features(z, h).shape == (2, 4)
    c = torch.randn(2, 6)
    x = Controller(4, 6, 3, "zch").features(z, h, c)
    torch.testing.assert_close(x, torch.cat([z, c, h], dim=-1))
    with pytest.raises(ValueError, match="needs M's state"):
        Controller(4, 6, 3, "zch").features(z, h)


def test_wrong_parameter_length_and_inputs_are_refused_clearly():
    controller = Controller(32, 256, 3)
    with pytest.raises(ValueError, match="expected last axis 867"):
        controller.set_flat(np.zeros(866))
    with pytest.raises(ValueError, match="expected last axis 867"):
        controller.act_population(torch.zeros(2, 99), torch.zeros(2, 288))
    with pytest.raises(ValueError, match="must be one of"):
        Controller(32, 256, 3, "h")  # type: ignore[arg-type]
