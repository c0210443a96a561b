"""CarRacing with the published World Models frame pipeline and action convention."""

from __future__ import annotations

from typing import Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.box2d.car_racing import CarRacing

from envs.fast_carracing import FastCarRacing
from envs.low_res_carracing import LowResCarRacing
from envs.wrappers import CropFrame, Interpolation, InvertFrame, ResizeFrame

Renderer = Literal["gymnasium", "fast", "low_res"]
"""Which CarRacing draws the frames: Gymnasium's, :class:`FastCarRacing` or :class:`LowResCarRacing`."""
_RENDERERS: dict[str, type[CarRacing]] = {
    "gymnasium": CarRacing,
    "fast": FastCarRacing,
    "low_res": LowResCarRacing,
}


class CarRacingTanhActions(gym.ActionWrapper):
    """Accept actions in [-1, 1]^3 (a tanh controller's output) and map them as the paper does.

    steer = a0 (already in [-1, 1]); gas = (a1 + 1) / 2 in [0, 1]; brake = clip(a2, 0, 1).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.action_space
        if not (isinstance(space, spaces.Box) and space.shape == (3,)):
            raise ValueError(f"CarRacingTanhActions needs CarRacing's Box(3,) action space, got {space}")
        self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        steer, gas, brake = action
        return np.array([steer, (gas + 1.0) / 2.0, max(brake, 0.0)], dtype=np.float32)


class CarRacingLapProgress(gym.Wrapper):
    """Add the episode's progress so far to every step's ``info["lap"]``, so the last step's info says how the
    episode went: a dict of ``tiles_visited`` and ``track_tiles`` (the reward is 1000 / track_tiles per new tile,
    -0.1 per step), ``off_road_steps`` (steps with no wheel on a road tile), ``steps`` and ``lap_finished``.

    Reads the base env's state after CarRacing's own step; changes no observation, reward or ending.
    """

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.off_road_steps = 0
        self.steps = 0
        self.lap_finished = False
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        car_racing = self.env.unwrapped
        self.steps += 1
        self.off_road_steps += all(not wheel.tiles for wheel in car_racing.car.wheels)
        self.lap_finished |= bool(info.get("lap_finished", False))
        info = {**info, "lap": {"tiles_visited": car_racing.tile_visited_count, "track_tiles": len(car_racing.track),
                                "off_road_steps": self.off_road_steps, "steps": self.steps,
                                "lap_finished": self.lap_finished}}
        return observation, reward, terminated, truncated, info


def describe_lap(info: dict[str, Any]) -> str | None:
    """``info["lap"]`` of :class:`CarRacingLapProgress` in words; None for an info without it (another env)."""
    lap = info.get("lap")
    if not isinstance(lap, dict):
        return None
    ending = "lap finished" if lap["lap_finished"] else "no lap finished"
    return (f"{lap['tiles_visited']} of {lap['track_tiles']} tiles, {ending}, {lap['off_road_steps']} of "
            f"{lap['steps']} steps off the road")


def make_carracing(
    frame_size: int = 64,
    crop_rows: int = 84,
    interpolation: Interpolation = "bilinear",
    invert_colors: bool = False,
    action_mode: Literal["tanh", "native"] = "tanh",
    render_mode: str | None = None,
    renderer: Renderer = "gymnasium",
    **carracing_kwargs: Any,
) -> gym.Env:
    """CarRacing-v3 physics and tracks, observations (frame_size, frame_size, 3) uint8.

    The defaults are the published pipeline: keep the top ``crop_rows`` = 84 rows of the 96x96 frame
    (the dashboard is dropped), resize to 64x64, no colour inversion, and the tanh action convention
    (:class:`CarRacingTanhActions`). ``action_mode="native"`` keeps Box([-1, 0, 0], [1, 1, 1]). Every step's
    ``info["lap"]`` holds the episode's progress so far (:class:`CarRacingLapProgress`).
    ``renderer`` picks the base env: Gymnasium's CarRacing, ``"fast"`` (:class:`FastCarRacing`, the same
    frames ~3x faster) or ``"low_res"`` (:class:`LowResCarRacing`, drawn at 96x96, ~10x faster, frames
    about one intensity level off on average). Other keyword arguments (``domain_randomize``,
    ``lap_complete_percent``, ...) go to CarRacing.
    """
    if action_mode not in ("tanh", "native"):
        raise ValueError(f"action_mode must be 'tanh' or 'native', got {action_mode!r}")
    if renderer not in _RENDERERS:
        raise ValueError(f"renderer must be one of {sorted(_RENDERERS)}, got {renderer!r}")
    env: gym.Env = _RENDERERS[renderer](render_mode=render_mode, continuous=True, **carracing_kwargs)
    if crop_rows:
        env = CropFrame(env, 0, crop_rows)
    env = ResizeFrame(env, frame_size, interpolation)
    if invert_colors:
        env = InvertFrame(env)
    if action_mode == "tanh":
        env = CarRacingTanhActions(env)
    return CarRacingLapProgress(env)
