"""Streaming datasets: every frame / step exactly once per epoch, in bounded memory, right shapes."""

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import write_synthetic_episodes
from rollouts.datasets import FrameDataset, SequenceDataset
from rollouts.storage import EpisodeFileError, list_episode_files, read_episode, write_latents


def frame_ids(frames: torch.Tensor) -> list[tuple[int, int]]:
    """(episode index, frame number) of each (C, H, W) frame, read from its marker pixels."""
    return [(int(f[0, 0, 0]), int(f[0, 0, 1])) for f in frames]


def test_frames_stream_each_frame_once(synthetic_episodes):
    dataset = FrameDataset(list_episode_files(synthetic_episodes), buffer_episodes=2, seed=3)
    frames = torch.stack(list(dataset))
    assert frames.shape == (6 * 21, 3, 64, 64) and frames.dtype == torch.uint8
    assert len(dataset) == 6 * 21
    assert sorted(frame_ids(frames)) == [(e, t) for e in range(6) for t in range(21)]


def test_frame_order_is_shuffled_seeded_and_changes_with_epoch(synthetic_episodes):
    files = list_episode_files(synthetic_episodes)
    first = frame_ids(torch.stack(list(FrameDataset(files, seed=1))))
    assert first == frame_ids(torch.stack(list(FrameDataset(files, seed=1))))
    dataset = FrameDataset(files, seed=1)
    dataset.set_epoch(1)
    assert frame_ids(torch.stack(list(dataset))) != first
    ordered = frame_ids(torch.stack(list(FrameDataset(files, shuffle=False))))
    assert ordered == [(e, t) for e in range(6) for t in range(21)]


def test_buffer_bounds_how_many_episodes_are_mixed(synthetic_episodes):
    frames = list(FrameDataset(list_episode_files(synthetic_episodes), buffer_episodes=2, seed=0))
    for start in range(0, len(frames), 42):  # each buffer of 2 episodes is 42 frames
        assert len({episode for episode, _ in frame_ids(torch.stack(frames[start : start + 42]))}) == 2


def test_dataloader_workers_split_the_episodes(synthetic_episodes):
    dataset = FrameDataset(list_episode_files(synthetic_episodes), buffer_episodes=1)
    loader = DataLoader(dataset, batch_size=10, num_workers=2)
    ids = [i for batch in loader for i in frame_ids(batch)]
    assert Counter(ids) == Counter((e, t) for e in range(6) for t in range(21))


def test_sequences_cover_every_step_once_with_masks(tmp_path):
    files = write_synthetic_episodes(tmp_path, 3, [25, 7, 10])
    dataset = SequenceDataset(files, seq_len=10, source="observations", buffer_episodes=3, seed=5)
    items = list(dataset)
    seen = Counter()
    for item in items:
        assert item["observations"].shape == (11, 64, 64, 3) and item["observations"].dtype == torch.uint8
        assert item["actions"].shape == (10, 3) and item["actions"].dtype == torch.float32
        for name in ("rewards", "terminated", "mask"):
            assert item[name].shape == (10,) and item[name].dtype == torch.float32
        steps = int(item["mask"].sum())
        assert torch.all(item["mask"][:steps] == 1) and torch.all(item["mask"][steps:] == 0)
        assert torch.all(item["actions"][steps:] == 0)
        for t in range(steps):
            seen[(int(item["observations"][t, 0, 0, 0]), int(item["observations"][t, 0, 1, 0]))] += 1
    assert seen == Counter((e, t) for e, n in enumerate([25, 7, 10]) for t in range(n))


def test_sequence_window_matches_the_episode(tmp_path):
    files = write_synthetic_episodes(tmp_path, 1, 8)
    (item,) = SequenceDataset(files, seq_len=12, source="observations", shuffle=False)
    episode = read_episode(files[0])
    np.testing.assert_array_equal(item["observations"][:9].numpy(), episode.observations)
    np.testing.assert_array_equal(item["actions"][:8].numpy(), episode.actions)
    np.testing.assert_array_equal(item["rewards"][:8].numpy(), episode.rewards)
    assert item["terminated"][7] == float(episode.terminated[-1])


def test_latent_sequences(tmp_path):
    files = write_synthetic_episodes(tmp_path, 2, 12)
    with pytest.raises(EpisodeFileError, match="run `worldmodels encode` first"):
        list(SequenceDataset(files, seq_len=6))
    for file in files:
        mu = np.arange(13 * 4, dtype=np.float32).reshape(13, 4)
        write_latents(file, mu, -mu)
    items = list(SequenceDataset(files, seq_len=6, shuffle=False))
    assert len(items) == 4
    assert items[0]["mu"].shape == (7, 4) and items[0]["logvar"].dtype == torch.float32
    np.testing.assert_array_equal(items[1]["mu"].numpy(), np.arange(6 * 4, 13 * 4).reshape(7, 4))


def test_corrupt_file_is_named_and_others_still_load(synthetic_episodes):
    files = list_episode_files(synthetic_episodes)
    files[2].write_bytes(files[2].read_bytes()[:1000])
    with pytest.raises(EpisodeFileError, match="episode_000002.npz"):
        list(FrameDataset(files, shuffle=False))
    good = files[:2] + files[3:]
    assert len(list(FrameDataset(good))) == 5 * 21


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="worldmodels collect"):
        list_episode_files(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no episode files"):
        list_episode_files(tmp_path)
