"""Training throughput and memory: V in frames/s and M in sequence-steps/s, over a small and a large data set.

    python benchmarks/train_throughput.py --device auto --episodes-small 10 --episodes-large 100 --steps 20

Synthetic episodes (``rollouts.synthetic``, 64x64x3 frames) and stand-in latents are written to a
temporary folder. Each measurement runs in its own subprocess, so each peak resident set size (RSS) is
that run's alone: the training stage itself (``train_vae`` / ``train_mdnrnn``, paper-sized models) for
``--steps`` optimiser steps, then one full pass of its streaming dataset over every episode. Streaming
keeps only ``buffer_episodes`` episodes in memory, so the peak RSS should not grow with the episode count.
Throughput is the mean of the CSV log rows after the first (warm-up) interval. The requested device is
measured, and the CPU as well when that device is a GPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from rollouts.datasets import FrameDataset, SequenceDataset  # noqa: E402
from rollouts.storage import list_episode_files  # noqa: E402
from rollouts.synthetic import write_projected_latents, write_synthetic_episodes  # noqa: E402
from worldmodels.config import load_config  # noqa: E402
from worldmodels.device import resolve_device  # noqa: E402

Z_SIZE = 32
RATE_COLUMNS = {"vae": "frames_per_s", "mdnrnn": "seq_steps_per_s"}
UNITS = {"vae": "frames/s", "mdnrnn": "seq-steps/s"}


def steady_rate(log_path: Path, column: str) -> float:
    """Mean throughput of a training CSV log, leaving out the first (warm-up) row when there are others."""
    with log_path.open(newline="") as file:
        rates = [float(row[column]) for row in csv.DictReader(file)]
    steady = rates[1:] or rates
    return sum(steady) / len(steady)


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Run one stage in this process: its throughput, then a full streaming pass; peak RSS at the end."""
    files = list_episode_files(args.data)
    overrides = [f"device={args.device}", f"vae.z_size={Z_SIZE}", f"vae.batch_size={args.vae_batch}",
                 f"vae.loader_workers={args.loader_workers}",
                 "vae.epochs=1000000", f"vae.checkpoint_every={10 * args.steps}", f"mdnrnn.steps={args.steps}",
                 f"mdnrnn.batch_size={args.mdnrnn_batch}", f"mdnrnn.seq_len={args.seq_len}",
                 f"mdnrnn.checkpoint_every={10 * args.steps}"]
    config = load_config("carracing", overrides)
    log_every = max(1, args.steps // 5)
    with tempfile.TemporaryDirectory() as run:
        if args.stage == "vae":
            from worldmodels.train_vae import LOG_NAME, train_vae

            train_vae(config, args.data, run, progress=False, log_every=log_every, max_steps=args.steps)
            dataset = FrameDataset(files, buffer_episodes=config.vae.buffer_episodes)
        else:
            from worldmodels.train_mdnrnn import LOG_NAME, train_mdnrnn

            train_mdnrnn(config, args.data, run, progress=False, log_every=log_every)
            dataset = SequenceDataset(files, seq_len=args.seq_len, source="latents")
        rate = steady_rate(Path(run) / LOG_NAME, RATE_COLUMNS[args.stage])
    for _ in DataLoader(dataset, batch_size=64):
        pass
    result = {"rate": rate, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if resolve_device(args.device).type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_measurement(stage: str, data: Path, device: str, args: argparse.Namespace) -> dict[str, float]:
    """:func:`measure` in a fresh subprocess, so its peak RSS is its own."""
    command = [sys.executable, __file__, "--measure", stage, "--data", str(data), "--device", device,
               "--steps", str(args.steps), "--vae-batch", str(args.vae_batch),
               "--mdnrnn-batch", str(args.mdnrnn_batch), "--seq-len", str(args.seq_len),
               "--loader-workers", str(args.loader_workers)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measurement {stage} on {device} over {data} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (the CPU is measured as well)")
    parser.add_argument("--episodes-small", type=int, default=10,
                        help="synthetic episodes of the small data set (default: %(default)s)")
    parser.add_argument("--episodes-large", type=int, default=100,
                        help="synthetic episodes of the large data set (default: %(default)s)")
    parser.add_argument("--episode-steps", type=int, default=100, help="steps per synthetic episode")
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per measurement")
    parser.add_argument("--vae-batch", type=int, default=64, help="V's batch (frames)")
    parser.add_argument("--loader-workers", type=int, default=0, help="V's DataLoader worker processes")
    parser.add_argument("--mdnrnn-batch", type=int, default=16, help="M's batch (sequences)")
    parser.add_argument("--seq-len", type=int, default=50, help="M's sequence length")
    parser.add_argument("--measure", choices=sorted(RATE_COLUMNS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        args.stage = args.measure
        print(json.dumps(measure(args)))
        return

    device = resolve_device(args.device).type
    devices = [device] + (["cpu"] if device != "cpu" else [])
    rows = []
    with tempfile.TemporaryDirectory() as root:
        folders = {}
        for count in (args.episodes_small, args.episodes_large):
            folders[count] = Path(root) / f"episodes_{count}"
            write_projected_latents(write_synthetic_episodes(folders[count], count, args.episode_steps), Z_SIZE)
        for dev in devices:
            for stage in ("vae", "mdnrnn"):
                for count, folder in folders.items():
                    result = run_measurement(stage, folder, dev, args)
                    rows.append((stage, dev, count, result))
                    print(f"  measured {stage} on {dev} over {count} episodes", file=sys.stderr)

    gpu_name = f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} CPU threads{gpu_name}; "
          f"{args.steps} steps per row; V batch {args.vae_batch} frames, {args.loader_workers} loader workers; M batch {args.mdnrnn_batch} x "
          f"{args.seq_len} steps; episodes of {args.episode_steps} steps")
    print(f"{'stage':<8}{'device':<8}{'episodes':>9}{'throughput':>14}  {'unit':<12}{'peak RSS MB':>12}"
          f"{'peak GPU MB':>12}")
    for stage, dev, count, result in rows:
        gpu = f"{result['peak_gpu_mb']:>12.0f}" if "peak_gpu_mb" in result else f"{'-':>12}"
        print(f"{stage:<8}{dev:<8}{count:>9}{result['rate']:>14.0f}  {UNITS[stage]:<12}"
              f"{result['peak_rss_mb']:>12.0f}{gpu}")


if __name__ == "__main__":
    main()
