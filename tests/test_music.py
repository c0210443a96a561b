"""Music: the chorale parser's round trip and cache, the LSTM with attention (loss falls, overfits one chorale,
generates MIDI), MuseGAN (shapes, critic training, MIDI), the composition env scored by the trained LSTM, the CLI
and the errors. Everything reads at most three chorales that music21 ships."""

import csv

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from music21 import converter

from envs.music_notation import note_name, pitch_of, quarter_length, token_pitches
from worldmodels.checkpoint import CheckpointError, load_musegan, load_music_lstm, read_checkpoint
from worldmodels.cli import main
from worldmodels.components.gan_updates import GANRecipe, GANUpdates
from worldmodels.config import load_config
from worldmodels.music.composition import make_composition_env
from worldmodels.music.data import MusicDataError, load_corpus, roll_chunks, score_tokens, token_windows
from worldmodels.music.lstm import MusicLSTM
from worldmodels.music.midi import write_rolls_midi, write_tokens_midi
from worldmodels.music.musegan import MuseGAN
from worldmodels.music.train import scheduled_learning_rate, train_musegan, train_music_lstm
from worldmodels.run_layout import MUSIC_CORPUS_NAME

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_LSTM = ["device=cpu", "music.limit=1", "music_lstm.seq_len=16", "music_lstm.embedding_size=16",
             "music_lstm.hidden_size=64", "music_lstm.batch_size=64", "music_lstm.learning_rate=1e-2",
             "music_lstm.steps=300", "music_lstm.checkpoint_every=100"]
TINY_MUSEGAN = ["device=cpu", "music.limit=3", "musegan.width=8", "musegan.latent_size=8", "musegan.batch_size=2",
                "musegan.n_critic=2", "musegan.steps=2"]


def config(*overrides: str):
    return load_config("carracing", list(overrides))


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    """A run folder holding an LSTM trained on the first chorale until it knows it."""
    run = tmp_path_factory.mktemp("lstm_run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train_music_lstm(config(*TINY_LSTM), run, progress=False, log_every=20)
    torch.set_num_threads(threads)
    return run


def test_notation():
    assert [note_name(p) for p in (60, 61, 70, 36)] == ["C4", "C#4", "A#4", "C2"]
    assert [pitch_of(n) for n in ("C4", "B-4", "E#3", "C#5")] == [60, 70, 53, 73]
    assert token_pitches("E4.C4.G4") == (60, 64, 67) and token_pitches("rest") == ()
    assert quarter_length("3/2") == 1.5
    with pytest.raises(ValueError, match="is not a pitch name"):
        pitch_of("H4")
    with pytest.raises(ValueError, match="must be a positive number"):
        quarter_length("0")


def test_parser_round_trip_through_midi_and_cache(tmp_path, monkeypatch):
    corpus = load_corpus(config("music.limit=2").music, tmp_path)
    assert corpus.names == ["bach/bwv269", "bach/bwv347"] and len(corpus.notes[0]) == len(corpus.durations[0]) > 30
    notes, durations = corpus.notes[0], corpus.durations[0]
    assert notes[:3] == ["G4", "G4", "D5"] and durations[:3] == ["1", "2", "1"]
    assert [v.shape[1] for v in corpus.voices] == [4, 4] and corpus.voices[0].dtype == np.int16
    low, high = corpus.pitch_range()
    assert 30 < low < high < 90
    assert roll_chunks(corpus, 2).shape[1:] == (2, 16, 4)

    folder = tmp_path / "midi"
    write_tokens_midi(notes, durations, folder / "chorale.mid")
    assert score_tokens(converter.parse(folder / "chorale.mid"), "melody") == (notes, durations)
    from_folder = load_corpus(config(f"music.folder={folder}").music, tmp_path / "folder_run")
    assert (from_folder.notes, from_folder.durations) == ([notes], [durations])

    monkeypatch.setattr("worldmodels.music.data.parse_corpus", lambda cfg: pytest.fail("the cache was not used"))
    assert load_corpus(config("music.limit=2").music, tmp_path).notes == corpus.notes
    (tmp_path / MUSIC_CORPUS_NAME).write_bytes(b"not a zip file")
    with pytest.raises(MusicDataError, match="music_corpus.npz is unreadable .* delete it and run again"):
        load_corpus(config("music.limit=2").music, tmp_path)


def test_bad_music_folders_give_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("C D E")
    with pytest.raises(MusicDataError, match="holds no MIDI or MusicXML file .* set music.folder=null"):
        load_corpus(config(f"music.folder={tmp_path / 'empty'}").music, tmp_path / "run")
    with pytest.raises(MusicDataError, match="does not exist"):
        load_corpus(config(f"music.folder={tmp_path / 'missing'}").music, tmp_path / "run")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.mid").write_bytes(b"MThd garbage")
    with pytest.raises(MusicDataError, match="broken.mid could not be parsed"):
        load_corpus(config(f"music.folder={tmp_path / 'bad'}").music, tmp_path / "run")


def test_lstm_loss_falls_without_spikes_and_it_overfits_one_chorale(lstm_run):
    with (lstm_run / "music_lstm_log.csv").open(newline="") as file:
        losses = [float(row["loss"]) for row in csv.DictReader(file)]  # means over 20 steps each
    assert len(losses) == 15 and np.mean(losses[-3:]) < 0.2 * losses[0], losses  # ~2.8 nats to ~0.1-0.25
    # No row rises far above the lowest before it (RMSprop at a constant rate: x2.6 at step 200; now <= x1.07).
    assert max(loss / min(losses[:i]) for i, loss in enumerate(losses[1:], 1)) < 1.5, losses
    model = load_music_lstm(lstm_run / "music_lstm.pt")
    corpus = load_corpus(config(*TINY_LSTM).music, lstm_run)
    notes, durations, next_notes, next_durations = map(torch.from_numpy,
                                                       token_windows(corpus, model.notes, model.durations, 16))
    note_logp, duration_logp = model.log_probs(notes, durations)  # (N, V)
    assert (note_logp.argmax(1) == next_notes).float().mean() > 0.9
    assert (duration_logp.argmax(1) == next_durations).float().mean() > 0.85

    tokens, lengths = model.compose(16, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert sum(quarter_length(d) for d in lengths) >= 16 and "START" not in tokens + lengths
    with pytest.raises(ValueError, match="temperature must be > 0"):
        model.compose(4, temperature=0)


class Crash(Exception):
    """Stands for the process dying in the middle of training."""


def test_the_learning_rate_schedule_goes_on_exactly_after_a_crash(lstm_run, tmp_path, monkeypatch):
    cfg = config(*TINY_LSTM).music_lstm
    assert [scheduled_learning_rate(cfg, step) for step in (0, 150, 300, 400)] == pytest.approx([1e-2, 5e-3, 0, 0])
    assert scheduled_learning_rate(config(*TINY_LSTM, "music_lstm.lr_schedule=constant").music_lstm, 299) == 1e-2
    forward, calls = MusicLSTM.forward, []

    def crashing_forward(self, *args):
        calls.append(1)
        if len(calls) == 151:  # step 151; the last checkpoint holds step 100
            raise Crash
        return forward(self, *args)

    monkeypatch.setattr(MusicLSTM, "forward", crashing_forward)
    with pytest.raises(Crash):
        train_music_lstm(config(*TINY_LSTM), tmp_path, progress=False)
    monkeypatch.undo()
    resumed = train_music_lstm(config(*TINY_LSTM), tmp_path, progress=False)
    assert (resumed.resumed_from, resumed.step) == (100, 300)
    expected, got = (read_checkpoint(run / "music_lstm.pt") for run in (lstm_run, tmp_path))
    torch.testing.assert_close(got.model, expected.model, rtol=0, atol=0)


def test_cli_generates_midi_and_refuses_a_checkpoint_of_another_shape(lstm_run, tmp_path, capsys):
    out = tmp_path / "x.mid"
    assert main(["music", "generate", "--run", str(lstm_run), "--out", str(out), "--bars", "4", "--set",
                 "device=cpu"]) == 0
    assert "music generate lstm:" in capsys.readouterr().out
    written, lengths = score_tokens(converter.parse(out), "melody")
    assert len(written) > 4 and sum(quarter_length(d) for d in lengths) >= 15

    with pytest.raises(CheckpointError, match=r"does not fit the MusicLSTM .*lstm.weight_hh_l0 is \(256, 64\) in the file but \(192, 48\)"):
        train_music_lstm(config(*TINY_LSTM, "music_lstm.hidden_size=48", "music_lstm.steps=400"), lstm_run,
                         progress=False)


def test_composition_env_rewards_the_chorales_next_note(lstm_run, tmp_path):
    cfg = config(*TINY_LSTM, "music.key_weight=0", "music.repeat_weight=0", "music.leap_weight=0",
                 "music.episode_bars=64").music
    env = make_composition_env(lstm_run / "music_lstm.pt", cfg, render_mode="midi", midi_path=tmp_path / "c.mid")
    check_env(env.unwrapped, skip_render_check=True)
    base = env.unwrapped
    corpus = load_corpus(cfg, lstm_run)
    real = [(base.notes.index(n) - 1, base.durations.index(d) - 1) for n, d in zip(corpus.notes[0],
                                                                                  corpus.durations[0])]
    rng = np.random.default_rng(0)
    real_rewards, random_rewards = [], []
    env.reset(seed=0)
    other = gymnasium.make("worldmodels/Composition-v0", notes=base.notes, durations=base.durations,
                           scorer=base.scorer, context=base.context, bars=64, key_weight=0, repeat_weight=0,
                           leap_weight=0)
    for position, (note, duration) in enumerate(real[:30]):
        other.reset(seed=0)
        for earlier in real[:position]:
            other.step(np.array(earlier))
        wrong = (note + rng.integers(1, base.action_space.nvec[0])) % base.action_space.nvec[0]
        random_rewards.append(other.step(np.array([wrong, duration]))[1])
        real_rewards.append(env.step(np.array([note, duration]))[1])
    assert np.mean(real_rewards) > np.mean(random_rewards) + 2
    assert np.mean(np.array(real_rewards) > np.array(random_rewards)) > 0.8
    assert env.render() == tmp_path / "c.mid" and len(score_tokens(converter.parse(tmp_path / "c.mid"),
                                                                    "melody")[0]) == 30


def test_musegan_shapes_generate_and_midi(tmp_path):
    torch.manual_seed(0)
    gan = MuseGAN(bars=2, pitches=84, latent_size=8, width=8, lowest_pitch=30)
    rolls = gan.generator(gan.sample_latent(3))
    assert rolls.shape == (3, 2, 16, 84, 4) and rolls.min() >= -1 and rolls.max() <= 1
    assert gan.critic(rolls).shape == (3,)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in gan.critic.modules())
    pitches = gan.generate(2, torch.Generator().manual_seed(1))
    assert pitches.shape == (2, 2, 16, 4) and pitches.dtype == np.int64
    assert pitches.min() >= 30 and pitches.max() < 30 + 84
    np.testing.assert_array_equal(pitches, gan.generate(2, torch.Generator().manual_seed(1)))
    one_hot = gan.to_rolls(torch.tensor([[[[30, 40, -1, 113]] * 16] * 2]))  # (1, 2, 16, 84, 4)
    assert one_hot.shape == (1, 2, 16, 84, 4) and one_hot[0, 0, 0, 10, 1] == 1 and one_hot[0, 0, 0, :, 2].max() == -1
    write_rolls_midi(pitches, tmp_path / "rolls.mid")
    score = converter.parse(tmp_path / "rolls.mid")
    assert len(score.parts) == 4 and score.highestTime == pytest.approx(2 * 2 * 4)
    with pytest.raises(ValueError, match="multiple of 12"):
        MuseGAN(pitches=50)


def test_musegan_critic_learns_to_separate_real_from_fake(tmp_path):
    corpus = load_corpus(config("music.limit=3").music, tmp_path)
    torch.manual_seed(0)
    gan = MuseGAN(bars=2, pitches=48, latent_size=8, width=16, lowest_pitch=corpus.pitch_range()[0])
    real = gan.to_rolls(torch.from_numpy(roll_chunks(corpus, 2).astype(np.int64)))  # (N, 2, 16, 48, 4)
    recipe = GANRecipe("wasserstein", n_critic=5, optimizer="adam", critic_lr=1e-3, generator_lr=1e-3,
                       gp_weight=10.0)
    optimizer = torch.optim.Adam([{"params": list(gan.critic.parameters())},
                                  {"params": list(gan.generator.parameters())}], lr=1e-3, betas=(0.5, 0.9))
    updates = GANUpdates(gan, optimizer, recipe)
    gaps = [float(updates.critic_update(real[:8])["critic_gap"]) for _ in range(15)]
    assert np.mean(gaps[-3:]) > np.mean(gaps[:3]) and min(gaps[-3:]) > 0, gaps


def test_musegan_trains_resumes_and_generates_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    sets = [arg for setting in TINY_MUSEGAN for arg in ("--set", setting)]
    assert main(["music", "train", "--model", "musegan", "--run", str(run), *sets]) == 0
    assert "music train musegan: trained to step 2" in capsys.readouterr().out
    summary = train_musegan(config(*TINY_MUSEGAN, "musegan.steps=3"), run, progress=False)
    assert (summary.resumed_from, summary.step) == (2, 3)
    assert load_musegan(run / "musegan.pt").generate(1).shape == (1, 2, 16, 4)
    assert main(["music", "generate", "--model", "musegan", "--run", str(run), "--out", str(tmp_path / "g.mid"),
                 "--bars", "3"]) == 0
    assert len(converter.parse(tmp_path / "g.mid").parts) == 4
    assert main(["music", "train", "--model", "musegan", "--run", str(run), *sets, "--set", "musegan.width=16"]) == 2
    assert "holds musegan.pt, built with musegan.width=8 (now 16)" in capsys.readouterr().err
    with pytest.raises(MusicDataError, match="spans .* pitches .* but musegan.pitches is 12"):
        train_musegan(config(*TINY_MUSEGAN, "musegan.pitches=12"), tmp_path / "narrow", progress=False)
    with pytest.raises(MusicDataError, match=r"n_critic x batch_size = 5 x 64 = 320 sections"):
        train_musegan(config("device=cpu", "music.limit=1"), tmp_path / "few", progress=False)
