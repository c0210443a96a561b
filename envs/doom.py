"""VizDoom TakeCover with the published World Models frame pipeline and action convention.

ViZDoom is imported only when an environment is built, so ``import envs`` works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.wrappers import CropFrame, Interpolation, InvertFrame, ResizeFrame

if TYPE_CHECKING:
    from vizdoom.gymnasium_wrapper.base_gymnasium_env import VizdoomEnv

ScreenResolution = Literal["RES_160X120", "RES_320X240", "RES_640X480"]
VIEW_ROWS: dict[str, int] = {"RES_160X120": 100, "RES_320X240": 208, "RES_640X480": 403}
"""Rows of the 3D view above Doom's status bar at each resolution (measured: the bar's rows never change)."""

_THIRD = np.float32(1.0 / 3.0)


class ScreenObservation(gym.ObservationWrapper):
    """Keep only the ``"screen"`` buffer of ViZDoom's dict observation: a (H, W, C) uint8 frame."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if not (isinstance(space, spaces.Dict) and "screen" in space.spaces):
            raise ValueError(f"ScreenObservation needs ViZDoom's Dict observation space with a 'screen' entry, "
                             f"got {space}")
        self.observation_space = space["screen"]

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        return observation["screen"]


class ThirdsToDiscreteAction(gym.ActionWrapper):
    """Accept one tanh output a in [-1, 1] (shape (1,)) and split it in thirds, as the paper does.

    a < -1/3 -> ``left``, a > 1/3 -> ``right``, otherwise ``stay`` (the boundaries themselves stay; the
    comparison is in float32). ``left``, ``stay`` and ``right`` are actions of the wrapped Discrete space.
    """

    def __init__(self, env: gym.Env, left: int, stay: int, right: int):
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"ThirdsToDiscreteAction needs a Discrete action space, got {space}")
        for name, choice in (("left", left), ("stay", stay), ("right", right)):
            if not space.contains(choice):
                raise ValueError(f"ThirdsToDiscreteAction {name}={choice} is not an action of {space}")
        self.choices = (left, stay, right)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def action(self, action: np.ndarray) -> int:
        values = np.asarray(action, dtype=np.float32).reshape(-1)
        if values.size != 1:
            raise ValueError(f"ThirdsToDiscreteAction expects one value in [-1, 1], got shape {np.shape(action)}")
        value = values[0]
        left, stay, right = self.choices
        if value < -_THIRD:
            return left
        if value > _THIRD:
            return right
        return stay


def _require_vizdoom() -> None:
    """Import ViZDoom and register its Gymnasium ids, or raise an ImportError saying how to install it."""
    try:
        import vizdoom.gymnasium_wrapper  # noqa: F401  (registers the Vizdoom* ids)
    except ImportError as err:
        raise ImportError(f"worldmodels/TakeCover-v0 needs ViZDoom, which failed to import ({err}); "
                          "install it with `pip install vizdoom`") from err


def _left_stay_right(vizdoom_env: VizdoomEnv) -> tuple[int, int, int]:
    """Indices of MOVE_LEFT alone, no button, and MOVE_RIGHT alone in ViZDoom's Discrete button combinations."""
    import vizdoom

    buttons = list(vizdoom_env.game.get_available_buttons())
    pressed = [tuple(b for b, on in zip(buttons, combo) if on) for combo in vizdoom_env.button_map]
    wanted = ((vizdoom.Button.MOVE_LEFT,), (), (vizdoom.Button.MOVE_RIGHT,))
    missing = [w for w in wanted if w not in pressed]
    if missing:
        raise ValueError(f"ViZDoom's TakeCover actions {pressed} lack the button combinations {missing}")
    left, stay, right = (pressed.index(w) for w in wanted)
    return left, stay, right


def make_takecover(
    frame_size: int = 64,
    screen_resolution: ScreenResolution = "RES_160X120",
    paper_view: bool = True,
    interpolation: Interpolation = "bilinear",
    invert_colors: bool = False,
    frame_skip: int = 1,
    render_mode: str | None = None,
    **vizdoom_kwargs: Any,
) -> gym.Env:
    """ViZDoom's ``VizdoomTakeCover-v1``; observations (frame_size, frame_size, 3) uint8, actions Box(-1, 1, (1,)).

    Reward is TakeCover's living reward, +1 per game tic (so ``frame_skip`` per step), including the step on
    which the player dies; the episode terminates on death. After death ViZDoom has no screen, so the final
    observation of a terminated episode is all zeros. The step cap comes from the registration (2,100).

    The defaults are the published pipeline: ``paper_view`` draws Doom's status bar and keeps only the 3D
    view above it (the authors kept rows 0-400 of gym-doom's 640x480 frame), resized to 64x64 with no colour
    inversion (the authors' code inverts; ``invert_colors=True``), one action per game tic, and the tanh
    action split in thirds (:class:`ThirdsToDiscreteAction`). ``paper_view=False`` keeps ViZDoom's own
    look: no status bar, the view fills the 4:3 screen (a taller vertical field of view).
    ``screen_resolution`` is the rendering size before the resize; 160x120 runs ~10x faster than
    640x480 and its 64x64 frames differ from those of 640x480 by ~3/255 per pixel on average.
    Other keyword arguments (``doom_skill``, ...) are ViZDoom game settings.
    """
    if screen_resolution not in VIEW_ROWS:
        raise ValueError(f"screen_resolution must be one of {sorted(VIEW_ROWS)}, got {screen_resolution!r}")
    _require_vizdoom()
    env = gym.make(
        "VizdoomTakeCover-v1",
        disable_env_checker=True,
        frame_skip=frame_skip,
        render_mode=render_mode,
        screen_resolution=screen_resolution,
        render_hud=paper_view,
        **vizdoom_kwargs,
    )
    left, stay, right = _left_stay_right(env.unwrapped)
    env = ScreenObservation(env)
    if paper_view:
        env = CropFrame(env, 0, VIEW_ROWS[screen_resolution])
    env = ResizeFrame(env, frame_size, interpolation)
    if invert_colors:
        env = InvertFrame(env)
    return ThirdsToDiscreteAction(env, left, stay, right)
