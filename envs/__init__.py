"""Gymnasium environments and wrappers of the World Models toolkit, registered on import.

Ids:
    ``worldmodels/CarRacing-v0``: CarRacing-v3 with the published frame pipeline (top 84 rows, 64x64
    uint8) and the tanh action convention; 1000 steps per episode, solved at 900.
"""

import gymnasium

gymnasium.register(
    id="worldmodels/CarRacing-v0",
    entry_point="envs.carracing:make_carracing",
    max_episode_steps=1000,
    reward_threshold=900,
)
