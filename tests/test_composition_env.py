"""The composition env without a model: registration, Gymnasium's and SB3's checkers, each music-theory rule,
episode length, MIDI rendering, and a few PPO steps. (With the trained LSTM as scorer: tests/test_music.py.)"""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from music21 import converter

from envs.composition import CompositionEnv, key_pitch_classes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def act(env: CompositionEnv, note: str, duration: str = "1") -> tuple[float, dict]:
    """Write ``note`` for ``duration``; returns the reward and the info."""
    _, reward, _, _, info = env.step(np.array([env.notes.index(note) - 1, env.durations.index(duration) - 1]))
    return reward, info


def test_registered_and_checker_clean(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the checker renders every declared mode to the default composition.mid
    env = gymnasium.make("worldmodels/Composition-v0")
    check_env(env.unwrapped)
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(CompositionEnv(), warn=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64,) and obs.dtype == np.int64 and not obs.any()  # all START


def test_rules():
    env = CompositionEnv(key="G major", max_repeats=2)
    env.reset()
    assert act(env, "F#4")[1]["key"] == 0 and act(env, "F4")[1]["key"] == -1  # F natural is not in G major
    assert act(env, "rest")[1]["key"] == 0
    env.reset()
    repeats = [act(env, "G4")[1]["repeat"] for _ in range(4)]
    assert repeats == [0, 0, -1, -1]  # the third G in a row is one repeat too many
    env.reset()
    act(env, "C4")
    act(env, "A4")  # a leap of 9 semitones up
    assert act(env, "G4")[1]["leap"] == 1  # resolved a step down
    env.reset()
    act(env, "C4")
    act(env, "A4")
    assert act(env, "B4")[1]["leap"] == -1  # kept going up
    reward, info = act(env, "C5")
    assert info["leap"] == 0 and reward == 0  # no leap before; in key; no scorer
    assert key_pitch_classes("B- major") == key_pitch_classes("A# major") == frozenset({10, 0, 2, 3, 5, 7, 9})
    with pytest.raises(ValueError, match="must be a tonic and a mode"):
        CompositionEnv(key="H dorian")


def test_scorer_weights_and_episode_length(tmp_path):
    calls = []

    def scorer(notes, durations):
        calls.append((notes.copy(), durations.copy()))
        note_logp = np.full(len(env.notes), -5.0)
        note_logp[env.notes.index("E4")] = -0.1
        return note_logp, np.full(len(env.durations), -1.0)

    env = CompositionEnv(scorer=scorer, context=4, bars=1, key_weight=0, repeat_weight=0, leap_weight=0,
                         likelihood_weight=2.0, render_mode="midi", midi_path=tmp_path / "m.mid")
    env.reset()
    assert act(env, "E4", "2")[0] == pytest.approx(2 * (-0.1 - 1.0))
    assert act(env, "C4", "1")[0] == pytest.approx(2 * (-5.0 - 1.0))
    _, _, terminated, truncated, info = env.step(np.array([env.notes.index("D4") - 1,
                                                                env.durations.index("1") - 1]))
    assert terminated and not truncated and info["beats"] == 4  # one bar of four quarter notes
    notes, durations = calls[-1]
    assert list(notes) == [0, 0, env.notes.index("E4"), env.notes.index("C4")]
    assert list(durations) == [0, 0, env.durations.index("2"), env.durations.index("1")]
    assert env.render() == tmp_path / "m.mid"
    written = converter.parse(tmp_path / "m.mid").flatten().notes
    assert [n.pitch.midi for n in written] == [64, 60, 62] and [n.quarterLength for n in written] == [2, 1, 1]
    with pytest.raises(ValueError, match="must list 'START' first"):
        CompositionEnv(notes=["C4", "D4"])


def test_trainable_by_ppo():
    from stable_baselines3 import PPO

    env = gymnasium.make("worldmodels/Composition-v0", bars=1)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)
