"""Training data never lands on the evaluation's or the calibration's seeds."""

from __future__ import annotations

import pytest

from worldmodels.cli import main
from worldmodels.config import ConfigError, load_config
from worldmodels.seeds import HELD_OUT_EPISODES, check_collect_seeds, held_out_seeds


def test_held_out_blocks_start_at_the_evaluation_and_calibration_seeds():
    config = load_config("doom-tiny", ["evaluate.seed=500", "evaluate.episodes=20000", "trust.seed=90000"])
    evaluation, calibration = held_out_seeds(config)
    assert (evaluation.start, len(evaluation)) == (500, 20000)  # evaluate.episodes when larger
    assert (calibration.start, len(calibration)) == (90000, HELD_OUT_EPISODES)


@pytest.mark.parametrize(("settings", "first", "episodes", "named"), [
    (["collect.seed=999990"], 0, 20, "evaluate.seed"),  # seeds 999,990..1,000,009
    (["collect.seed=0", "trust.seed=150"], 100, 200, "trust.seed"),  # a later round's episodes 100..199
])
def test_a_collection_on_held_out_seeds_is_refused_naming_the_setting(settings, first, episodes, named):
    config = load_config("doom-tiny", settings)
    with pytest.raises(ConfigError, match=rf"would gather episodes on seeds .* \({named} and the \d+ after it\)"):
        check_collect_seeds(config, first, episodes)


@pytest.mark.parametrize(("settings", "first", "episodes"), [
    ([], 0, 10_000),  # the defaults: seeds 0..9,999, far below 1,000,000 and 2,000,000
    (["collect.seed=999980"], 0, 20),  # ends right below evaluate.seed
    (["collect.seed=0", "trust.seed=150"], 0, 150),  # ends right below trust.seed
    (["collect.seed=999990"], 5, 5),  # nothing left to gather
])
def test_collections_apart_from_the_held_out_seeds_pass(settings, first, episodes):
    check_collect_seeds(load_config("doom-tiny", settings), first, episodes)


def test_collect_refuses_held_out_seeds_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "episodes"
    assert main(["collect", "--preset", "doom-tiny", "--set", "collect.seed=1000000", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("worldmodels collect: error: collect.seed=1000000 would gather episodes on seeds 1000000..")
    assert not out.exists()  # the folder the refused command created is gone again
    out.mkdir()
    (out / "keep.txt").write_text("a user's file")
    assert main(["collect", "--preset", "doom-tiny", "--set", "collect.seed=1000000", "--out", str(out)]) == 2
    assert [path.name for path in out.iterdir()] == ["keep.txt"]  # a folder that was there stays, as it was
