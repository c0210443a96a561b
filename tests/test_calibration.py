"""The calibration diagnostic's pieces: tie-aware ranks, the rank correlation, the fixed controllers, the trust
summary and its reuse."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace

import numpy as np
import pytest

from agents.calibration import (
    Calibration,
    CalibrationRow,
    average_ranks,
    dream_search_probe,
    fixed_controllers,
    trust_before_evolving,
    trust_provenance,
)
from agents.dream_trust import TrustSummary
from agents.evaluation import EvaluationReport
from agents.evaluators import SerialEvaluator
from worldmodels.config_schema import CMAESConfig, Config, TrustConfig
from worldmodels.run_layout import CALIBRATION_TRUST_NAME, MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME


def report(mean: float) -> EvaluationReport:
    return EvaluationReport.from_returns(np.array([mean]), np.array([0]))


def calibration(dream: list[float], real: list[float]) -> Calibration:
    """Controllers c0, c1, ... with these dream and real means (one episode each), at tau 1.15."""
    return Calibration(1.15, [CalibrationRow(f"c{i}", report(d), report(r)) for i, (d, r) in
                              enumerate(zip(dream, real))])


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks(np.array([10.0, 30.0, 20.0])), [1.0, 3.0, 2.0])
    np.testing.assert_array_equal(average_ranks(np.array([193.4, 5.0, 193.4, 700.0])), [2.5, 1.0, 2.5, 4.0])


def test_rank_correlation_is_one_when_the_dream_orders_controllers_as_the_real_env_does():
    assert calibration([100, 700, 300], [150, 900, 200]).rank_correlation == pytest.approx(1.0)
    assert calibration([100, 700, 300], [900, 150, 400]).rank_correlation == pytest.approx(-1.0)
    # The wall exploit: the dream's best controller is no better than the others in the real game.
    assert calibration([145, 786, 641], [147, 193.4, 193.4]).rank_correlation == pytest.approx(0.866, abs=1e-3)
    assert calibration([1], [2]).rank_correlation is None
    assert calibration([1, 5], [80, 80]).rank_correlation is None  # every real episode hit the step cap
    # rho = 1 - 6 * 10 / (5 * 24) = 0.5 exactly, which np.corrcoef gives as 0.49999999999999994: judged at 0.5.
    half = calibration([1, 3, 5, 2, 4], [1, 2, 3, 4, 5])
    assert half.rank_correlation == 0.5 and half.trust(TrustConfig(min_rank_correlation=0.5)).reasons == []


def test_fixed_controllers_are_seeded_and_files_are_checked(tmp_path):
    first, again = fixed_controllers(12, (0.1, 1.0), 2, seed=3), fixed_controllers(12, (0.1, 1.0), 2, seed=3)
    assert list(first) == ["zeros", "random N(0, 0.1^2) #0", "random N(0, 0.1^2) #1", "random N(0, 1^2) #0",
                           "random N(0, 1^2) #1"]
    assert all(params.shape == (12,) and params.dtype == np.float32 for params in first.values())
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert 0.5 < first["random N(0, 1^2) #0"].std() < 2 and first["random N(0, 0.1^2) #0"].std() < 0.3
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros(7))
    with pytest.raises(ValueError, match=r"wrong.npy hold 7 values, but this run's controller has 12"):
        fixed_controllers(12, files=[wrong])
    with pytest.raises(ValueError, match="weight scales must be > 0"):
        fixed_controllers(12, scales=(0.0,))


class HillDream:
    """A stand-in dream that pays -||w - 0.5||^2 whatever the seed: a search climbs toward w = 0.5."""

    num_params = 6

    def run(self, params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return -np.sum((params - 0.5) ** 2, axis=1)


def test_the_probe_is_a_seeded_dream_search_from_zeros_that_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = Config(cmaes=CMAESConfig(popsize=8, rollouts=2, sigma0=0.2, seed=3))
    dream = SerialEvaluator(HillDream)
    mean = dream_search_probe(dream, config, 8)
    assert mean.shape == (HillDream.num_params,) and mean.dtype == np.float32
    start, probed = dream.worker.run(np.stack([np.zeros_like(mean), mean]), np.zeros(2, np.int64))
    assert probed > start  # it climbed the dream from zeros
    np.testing.assert_array_equal(dream_search_probe(dream, config, 8), mean)  # the same search again
    assert not list(tmp_path.iterdir())  # its CMA-ES state lived in a temporary folder, now gone


def test_trust_summary_judges_the_rank_correlation_and_the_largest_gap():
    settings = TrustConfig(min_rank_correlation=0.5, max_gap_fraction=1.0)
    faithful = calibration([100, 700, 300], [150, 900, 200]).trust(settings)
    assert faithful.verdict == "trusted" and faithful.warning() is None and faithful.reasons == []
    assert faithful.rank_correlation == pytest.approx(1.0) and faithful.controllers == 3
    assert (faithful.largest_gap, faithful.largest_gap_controller, faithful.real_spread) == (100, "c2", 750)
    # The wall exploit: M flatters c1 by 593, more than the 46.4 the controllers differ by for real.
    exploit = calibration([145, 786, 641], [147, 193.4, 193.4]).trust(settings)
    assert exploit.verdict == "untrusted" and exploit.rank_correlation == pytest.approx(0.866, abs=1e-3)
    assert exploit.reasons == ["'c1' scores +592.6 more in the dream, over 1 x the real spread 46.4"]
    reversed_order = calibration([100, 700, 300], [900, 150, 400]).trust(settings)
    assert reversed_order.reasons == ["rank correlation -1.000 < 0.5"]
    assert "WARNING: the dream is not to be trusted (rank correlation -1.000 < 0.5)" in reversed_order.warning()
    lenient = reversed_order.judged_by(TrustConfig(min_rank_correlation=-1.0))
    assert lenient.verdict == "trusted" and lenient.rank_correlation == reversed_order.rank_correlation
    capped = calibration([80, 60], [80, 80]).trust(settings)  # every real episode hit the step cap
    assert capped.verdict == "unjudged" and "cannot be judged" in capped.warning()
    assert capped.describe()[1] == ("  rank correlation of dream and real means: undefined (equal means) "
                                    "(trusted from 0.5)")


def test_the_probe_is_judged_by_how_much_of_its_dream_gain_over_its_start_is_real():
    settings = TrustConfig(min_rank_correlation=-1.0, max_gap_fraction=1.0, min_probe_transfer=0.25)
    # zeros, a strong controller (a shipped agent's, say) and the probe: M's exploit, +629.6 over the real score, stays
    # inside the gap threshold (1 x the real spread of 864.9), but not inside the probe's.
    dream, real = [174.5, 803.8, 547.8], [-80.0, 783.1, -81.8]
    exploited = replace(calibration(dream, real), probe=("c2", "c0")).trust(settings)
    assert exploited.largest_gap == pytest.approx(629.6) and exploited.real_spread == pytest.approx(864.9)
    assert (exploited.probe_dream_gain, exploited.probe_real_gain) == pytest.approx((373.3, -1.8))
    assert exploited.reasons == ["the dream search's mean gained +373.3 in the dream but -1.8 for real, under 0.25 x "
                                 "the dream's gain"]
    assert exploited.describe()[3] == ("  dream search's gain over its start: +373.3 in the dream, -1.8 for real "
                                       "(trusted from 0.25 x the dream's gain)")
    assert calibration(dream, real).trust(settings).reasons == []  # without the probe named, nothing flags it
    assert exploited.judged_by(TrustConfig(min_rank_correlation=-1.0, min_probe_transfer=-np.inf)).reasons == []
    lenient_gap = TrustConfig(max_gap_fraction=1e9, min_probe_transfer=0.25)
    flattered = replace(calibration([150, 300, 1500], [150, 250, 750]), probe=("c2", "c0")).trust(lenient_gap)
    assert flattered.verdict == "trusted" and 0.25 < flattered.probe_real_gain / flattered.probe_dream_gain < 0.5
    lost = replace(calibration([150, 300, 140], [150, 250, 100]), probe=("c2", "c0")).trust(lenient_gap)
    assert lost.reasons == [] and lost.describe()[3].endswith("(not judged: no gain in the dream)")
    with pytest.raises(ValueError, match=r"probe rows \['start'\] are not among the controllers"):
        replace(calibration(dream, real), probe=("c2", "start")).trust(settings)


def test_trust_summary_is_written_and_read_back(tmp_path):
    summary = calibration([145, 786, 641], [147, 193.4, 193.4]).trust(TrustConfig())
    path = tmp_path / CALIBRATION_TRUST_NAME
    summary.write_json(path)
    document = json.loads(path.read_text())
    assert document["verdict"] == "untrusted" and document["reasons"] == summary.reasons
    assert document["min_rank_correlation"] == 0.5 and document["largest_gap_controller"] == "c1"
    assert TrustSummary.read_json(path) == summary
    probed = replace(calibration([174.5, 803.8, 547.8], [-80.0, 783.1, -81.8]), probe=("c2", "c0")).trust(TrustConfig())
    probed.write_json(path)
    assert TrustSummary.read_json(path) == probed and TrustSummary.read_json(path).verdict == "untrusted"
    older = {key: value for key, value in json.loads(path.read_text()).items() if "probe" not in key}
    path.write_text(json.dumps(older))  # written before the probe's gains were recorded
    assert TrustSummary.read_json(path).probe_dream_gain is None and TrustSummary.read_json(path).reasons == []
    path.write_text(json.dumps(older | {"probe_dream_gain": "a lot", "probe_real_gain": 1.0}))
    with pytest.raises(ValueError, match="non-finite gap, spread, temperature or probe gain"):
        TrustSummary.read_json(path)
    path.write_text('{"rank_correlation": 0.5}')
    with pytest.raises(ValueError, match=r"calibration_trust.json is not a dream trust summary \(KeyError"):
        TrustSummary.read_json(path)


def test_a_summary_of_the_same_v_m_and_settings_is_reused_and_judged_by_the_current_thresholds(tmp_path,
                                                                                              episode_folder):
    (tmp_path / VAE_CHECKPOINT_NAME).write_bytes(b"V")
    (tmp_path / MDNRNN_CHECKPOINT_NAME).write_bytes(b"M")
    episodes = episode_folder(3, 5, latents_z=4)
    summary = calibration([100, 700, 300], [150, 900, 200]).trust(TrustConfig())
    summary = replace(summary, episodes=TrustConfig().episodes,
                      provenance=trust_provenance(Config(), tmp_path, episodes))
    summary.write_json(tmp_path / CALIBRATION_TRUST_NAME)
    strict = Config(trust=TrustConfig(min_rank_correlation=1.01))
    summary, reused = trust_before_evolving(strict, tmp_path, episodes)  # no real V: calibrating fails
    assert reused and summary.verdict == "untrusted" and summary.min_rank_correlation == 1.01
    assert summary.reasons == ["rank correlation 1.000 < 1.01"]


@pytest.mark.parametrize(("change", "logged"), [
    ("m", "scored another files mdnrnn.pt"), ("v", "scored another files vae.pt"),
    ("temperature", "scored another settings dream"), ("trust_seed", "scored another settings trust_seed"),
    ("more_episodes", "fewer than trust.episodes=5"), ("no_provenance", "does not record what it scored"),
    ("start_data", "scored another files dream start latents"),
    ("start_episodes", "scored another files dream start latents, settings dream")])
def test_a_summary_of_another_v_m_start_data_or_settings_is_scored_again(tmp_path, episode_folder, monkeypatch,
                                                                         caplog, change, logged):
    (tmp_path / VAE_CHECKPOINT_NAME).write_bytes(b"V")
    (tmp_path / MDNRNN_CHECKPOINT_NAME).write_bytes(b"M")
    episodes = episode_folder(3, 5, latents_z=4)
    config = Config()
    provenance = None if change == "no_provenance" else trust_provenance(config, tmp_path, episodes)
    stored = calibration([100, 700, 300], [150, 900, 200]).trust(config.trust)
    replace(stored, episodes=config.trust.episodes, provenance=provenance).write_json(tmp_path / CALIBRATION_TRUST_NAME)
    if change in ("m", "v"):
        (tmp_path / (MDNRNN_CHECKPOINT_NAME if change == "m" else VAE_CHECKPOINT_NAME)).write_bytes(b"retrained")
    if change == "start_data":  # the same number of episodes, encoded by another V
        episodes = episode_folder(3, 5, latents_z=4, latents_seed=1)
    settings = {"temperature": {"dream": replace(config.dream, temperature=config.dream.temperature + 0.1)},
                "trust_seed": {"trust": replace(config.trust, seed=config.trust.seed + 1)},
                "more_episodes": {"trust": replace(config.trust, episodes=config.trust.episodes + 1)},
                "start_episodes": {"dream": replace(config.dream, start_episodes=2)}}
    config = replace(config, **settings.get(change, {}))
    fresh = calibration([100, 300, 700], [150, 900, 200])
    monkeypatch.setattr("agents.calibration.calibrate", lambda *args, **kwargs: fresh)
    with caplog.at_level("INFO"):
        summary, reused = trust_before_evolving(config, tmp_path, episodes)
    assert not reused and summary == fresh.trust(config.trust)
    assert logged in caplog.text and "calibrating again" in caplog.text


def test_sweep_table_sets_the_papers_rows_beside_doom_and_only_doom():
    from agents.temperature_sweep import SweepRow, markdown_table, published_table
    from worldmodels.config import load_config

    def report(mean: float) -> EvaluationReport:
        return EvaluationReport(mean, 10.0, mean - 10, mean + 10, 2, [mean - 10, mean + 10], [5, 6])

    rows = [SweepRow(tau, report(100 * tau), report(50 * tau + 0.2)) for tau in (0.1, 1.15, 2.0)]
    doom = markdown_table(rows, published_table(load_config("doom-tiny"))).splitlines()
    assert doom[0].count("|") == 6 and set(doom[1].split("|")[1:-1]) == {"---"}
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in doom[2:5]]
    assert cells == [["0.1", "10 +- 10", "5 +- 10", "2086 +- 140", "193 +- 58"],
                     ["1.15", "115 +- 10", "58 +- 10", "918 +- 546", "1092 +- 556"],
                     ["2", "200 +- 10", "100 +- 10", "-", "-"]]  # no paper row at tau 2
    assert "seeds 5 and up" in doom[-1]
    carracing = markdown_table(rows, published_table(load_config("carracing-tiny"))).splitlines()
    assert carracing[0] == "| temperature | dream score | real score |" and carracing[1] == "|---|---|---|"
