"""Datasets: every frame / step exactly once per epoch, in bounded memory, right shapes; items, batches, resident."""

from collections import Counter

import numpy as np
import pytest
import torch
from conftest import write_synthetic_episodes
from torch.utils.data import DataLoader

from rollouts.datasets import FrameDataset, SequenceDataset
from rollouts.storage import EpisodeFileError, list_episode_files, read_episode, write_latents


def frame_ids(frames: torch.Tensor) -> list[tuple[int, int]]:
    """(episode index, frame number) of each (C, H, W) frame, read from its marker pixels."""
    return [(int(f[0, 0, 0]), int(f[0, 0, 1])) for f in frames]


def test_synthetic_markers_number_episodes_and_frames_past_255():
    from rollouts.synthetic import make_synthetic_episode

    frames = make_synthetic_episode(300, 299).observations  # (300, 64, 64, 3): every number needs a second byte
    index = frames[:, 0, 0, 0].astype(int) + 256 * frames[:, 0, 0, 1].astype(int)
    step = frames[:, 0, 1, 0].astype(int) + 256 * frames[:, 0, 1, 1].astype(int)
    assert (index == 300).all() and (step == np.arange(300)).all()
    small = make_synthetic_episode(3, 20).observations  # below 256: one byte, the second channel left to the picture
    assert (small[:, 0, 0, 0] == 3).all() and (small[:, 0, 1, 0] == np.arange(21)).all()
    with pytest.raises(ValueError, match="two bytes"):
        make_synthetic_episode(70_000, 5)


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


def batch_ids(dataset) -> list[list[tuple[int, int]]]:
    """(episode, frame) of every frame of each batch ``dataset`` yields through a DataLoader."""
    return [frame_ids(batch) for batch in DataLoader(dataset, batch_size=None)]


@pytest.mark.parametrize("resident", [False, True], ids=["streamed", "resident"])
def test_frame_batches_visit_every_frame_once_in_an_order_set_by_seed_and_epoch(synthetic_episodes, resident):
    files = list_episode_files(synthetic_episodes)

    def dataset(seed: int, epoch: int) -> FrameDataset:
        made = FrameDataset(files, buffer_episodes=2, seed=seed, batch_size=10)
        made.set_epoch(epoch)
        return made.to("cpu") if resident else made

    first = batch_ids(dataset(seed=1, epoch=0))
    assert [len(ids) for ids in first] == [10] * 12 + [6] and len(dataset(1, 0)) == 13  # 126 frames
    flat = [i for ids in first for i in ids]
    assert sorted(flat) == [(e, t) for e in range(6) for t in range(21)]
    assert batch_ids(dataset(seed=1, epoch=0)) == first
    assert [i for ids in batch_ids(dataset(seed=1, epoch=1)) for i in ids] != flat
    assert [i for ids in batch_ids(dataset(seed=2, epoch=0)) for i in ids] != flat
    mixed = len({episode for episode, _ in flat[:42]})  # the first 42 frames: one buffer of 2 episodes when streamed
    assert mixed == 2 if not resident else mixed > 2


def test_batches_are_the_items_collated(synthetic_episodes, tmp_path):
    """A batch dataset yields what a DataLoader collating its items yields, batch for batch, bit for bit."""
    files = list_episode_files(synthetic_episodes)
    for epoch in (0, 1):
        items = FrameDataset(files, buffer_episodes=4, seed=3)
        batches = FrameDataset(files, buffer_episodes=4, seed=3, batch_size=16)
        items.set_epoch(epoch)
        batches.set_epoch(epoch)
        pairs = list(zip(DataLoader(items, batch_size=16), DataLoader(batches, batch_size=None), strict=True))
        assert all(torch.equal(a, b) for a, b in pairs)
    files = write_synthetic_episodes(tmp_path / "seq", 5, [25, 7, 40, 3, 10])
    for file in files:
        mu = np.random.default_rng(0).normal(size=(len(read_episode(file).observations), 4)).astype(np.float32)
        write_latents(file, mu, -mu)
    for source in ("latents", "observations"):
        items = SequenceDataset(files, seq_len=8, source=source, buffer_episodes=2, seed=4)
        batches = SequenceDataset(files, seq_len=8, source=source, buffer_episodes=2, seed=4, batch_size=3)
        for a, b in zip(DataLoader(items, batch_size=3), DataLoader(batches, batch_size=None), strict=True):
            assert a.keys() == b.keys()
            assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


@pytest.mark.parametrize("resident", [False, True], ids=["streamed", "resident"])
def test_sequence_batches_cover_every_step_once(tmp_path, resident):
    lengths = [25, 7, 10, 31]
    files = write_synthetic_episodes(tmp_path, 4, lengths)
    dataset = SequenceDataset(files, seq_len=10, source="observations", buffer_episodes=2, seed=5, batch_size=3)
    if resident:
        dataset.to("cpu")
    seen = Counter()
    for batch in DataLoader(dataset, batch_size=None):
        assert batch["observations"].shape[1:] == (11, 64, 64, 3) and batch["actions"].shape[1:] == (10, 3)
        assert batch["mask"].shape[1:] == (10,) and len({len(v) for v in batch.values()}) == 1
        for item_mask, observations, actions in zip(batch["mask"], batch["observations"], batch["actions"]):
            steps = int(item_mask.sum())
            assert torch.all(item_mask[:steps] == 1) and torch.all(actions[steps:] == 0)
            assert torch.all(observations[steps + 1 :] == 0)
            for t in range(steps):
                seen[(int(observations[t, 0, 0, 0]), int(observations[t, 0, 1, 0]))] += 1
    assert seen == Counter((e, t) for e, n in enumerate(lengths) for t in range(n))


def test_resident_data_reports_its_size_and_refuses_loader_workers(synthetic_episodes):
    files = list_episode_files(synthetic_episodes)
    dataset = FrameDataset(files, batch_size=10)
    assert dataset.nbytes == 6 * 21 * 64 * 64 * 3
    dataset.to("cpu")
    with pytest.raises(ValueError, match="without DataLoader workers"):
        list(DataLoader(dataset, batch_size=None, num_workers=1))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        FrameDataset(files, batch_size=0)


def test_batch_dataset_workers_split_the_episodes(synthetic_episodes):
    dataset = FrameDataset(list_episode_files(synthetic_episodes), buffer_episodes=1, batch_size=8)
    ids = [i for batch in DataLoader(dataset, batch_size=None, num_workers=2) for i in frame_ids(batch)]
    assert Counter(ids) == Counter((e, t) for e in range(6) for t in range(21))
