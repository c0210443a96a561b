"""Gymnasium environments and wrappers of the World Models toolkit, registered on import.

Ids:
    ``worldmodels/CarRacing-v0``: CarRacing-v3 with the published frame pipeline (top 84 rows, 64x64
    uint8) and the tanh action convention; 1000 steps per episode, solved at 900.
    ``worldmodels/CarRacingFast-v0``, ``worldmodels/CarRacingLowRes-v0``: the same pipeline on the faster
    renderers below (``make_carracing(renderer="fast" | "low_res")``).
    ``worldmodels/FastCarRacing-v3``: CarRacing-v3 with bit-identical (96, 96, 3) frames, ~3x the steps/s
    (``envs.fast_carracing.FastCarRacing``); same arguments, 1000 steps per episode, solved at 900.
    ``worldmodels/LowResCarRacing-v3``: CarRacing-v3 drawn straight at 96x96, ~10x the steps/s, frames
    about one intensity level off on average (``envs.low_res_carracing.LowResCarRacing``).
    ``worldmodels/TakeCover-v0``: ViZDoom TakeCover (needs ``pip install vizdoom``) with the published frame
    pipeline (the 3D view above the status bar, 64x64 uint8) and one tanh action split in thirds
    (left / stay / right); +1 per step alive, 2100 steps per episode, solved at 750.
    ``worldmodels/Dream-v0``: M's dream (``envs.dream_env``), made with the checkpoint paths, e.g.
    ``gymnasium.make("worldmodels/Dream-v0", mdnrnn_path=..., latents_folder=..., vae_path=...)``;
    ``gymnasium.make_vec`` builds one batched ``DreamVectorEnv``. 1000 steps per episode by default
    (pass ``max_episode_steps=2100`` for Doom TakeCover). Named by string: importing ``envs`` does not
    import ``worldmodels``; the dream env's module does, when the env is made.
    ``worldmodels/Composition-v0``: write a melody one note per step, rewarded by an injected note scorer
    and music-theory rules (``envs.composition``); ``worldmodels.music.composition.make_composition_env``
    makes it with a trained LSTM as the scorer.
"""

import gymnasium

gymnasium.register(
    id="worldmodels/CarRacing-v0",
    entry_point="envs.carracing:make_carracing",
    max_episode_steps=1000,
    reward_threshold=900,
)

for _suffix, _renderer, _module, _env_class in (
    ("Fast", "fast", "fast_carracing", "FastCarRacing"),
    ("LowRes", "low_res", "low_res_carracing", "LowResCarRacing"),
):
    gymnasium.register(
        id=f"worldmodels/CarRacing{_suffix}-v0",
        entry_point="envs.carracing:make_carracing",
        kwargs={"renderer": _renderer},
        max_episode_steps=1000,
        reward_threshold=900,
    )
    gymnasium.register(
        id=f"worldmodels/{_env_class}-v3",
        entry_point=f"envs.{_module}:{_env_class}",
        max_episode_steps=1000,
        reward_threshold=900,
    )

gymnasium.register(
    id="worldmodels/TakeCover-v0",
    entry_point="envs.doom:make_takecover",
    max_episode_steps=2100,
    reward_threshold=750,
)

gymnasium.register(
    id="worldmodels/Dream-v0",
    entry_point="envs.dream_env:DreamEnv",
    vector_entry_point="envs.dream_env:DreamVectorEnv",
    max_episode_steps=1000,
)

gymnasium.register(
    id="worldmodels/Composition-v0",
    entry_point="envs.composition:CompositionEnv",
)
