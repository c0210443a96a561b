"""Training throughput of V (frames/s) and M (sequence steps/s): the plain loop against the stages' data paths
and precisions, with the fraction of the hardware's matrix-multiply rate each reaches.

    python benchmarks/train_throughput.py                         # the CPU
    python benchmarks/train_throughput.py --device cuda --episodes 1000 --steps 100 --vae-batch 1024 \\
        --mdnrnn-batch 1024 --seq-len 100 --loader-workers 8      # a GPU

Synthetic episodes (``rollouts.synthetic``, 64x64x3 frames) and stand-in latents are written to a temporary
folder. Each row runs in its own subprocess, so its peak resident set size (RSS) is its own. Rows per stage:

- reference: the plain float32 loop as public implementations write it: a standard ``DataLoader`` collating
  one item at a time (a frame, a window; ``FrameDataset`` / ``SequenceDataset`` without ``batch_size``, the
  stages' path before issue 19), the same model, loss and optimiser.
- streamed / resident, float32 / bfloat16: the training stage itself (``train_vae`` / ``train_mdnrnn``) with
  ``resident`` false (batches gathered from a buffer of episodes streamed off disk) or true (every frame or
  latent held on the device), and ``precision`` float32 or bfloat16.
- data only: the data path alone, without a model: per-item ``DataLoader``, streamed batches, resident batches
  (one epoch after a first one, so the page cache and the resident copy are warm).
- alternated (after the table): the training step alone on one fixed random batch, float32 and bfloat16
  autocast alternating in blocks of half a second, 8 each, in one process, so a change of load hits both
  alike: bfloat16's speedup measured even on a machine shared with other work.

Training throughput is items over time after the first (warm-up) logging interval: for the stages, the
harmonic mean of their CSV log rows after the first. "x ref" is the ratio to the same stage's reference row
(for data rows, to the per-item DataLoader), measured in the same run; ``--rounds N`` measures every row N
times, rows interleaved, and keeps each row's fastest, which steadies the ratios on a machine shared with
other work.

Fraction of the hardware limit: the achieved FLOP/s over the matrix-multiply rate the same process measures
right after the row (a one-second loop of square matrix products in float32, in bfloat16 for the bfloat16
rows, on ``--threads`` threads), so both share the machine's load of the moment. FLOPs per item are counted
from the layer shapes: 2 per multiply-add; a training step is the forward pass, the input gradient and the
weight gradient (3x the forward's multiply-adds) less the input gradient of the first layer (its input needs
none); elementwise work is not counted. V (published sizes, z 32): 2 x (3 x 38.8M - 1.5M) = 229.7 MFLOP per
frame (multiply-adds: the four convolutions 1.5M, 6.4M, 4.7M, 2.1M, the four transposed convolutions 3.3M,
5.1M, 12.5M, 3.1M, the three dense layers 0.1M). M (z 32, 3 actions, LSTM 256, 5 mixtures): 2 x (3 x 421,888 -
36,864) = 2.46 MFLOP per sequence step (multiply-adds: the LSTM's input 4 x 256 x 36 and recurrent 4 x 256 x
256 products, the mixture head's 256 x 480). The script prints both counts from the models it runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch
from torch import nn
from torch.utils.data import DataLoader

from rollouts.datasets import FrameDataset, SequenceDataset
from rollouts.storage import list_episode_files
from rollouts.synthetic import write_projected_latents, write_synthetic_episodes
from worldmodels.config import load_config
from worldmodels.config_schema import Config
from worldmodels.device import resolve_device
from worldmodels.mdnrnn import MDNRNN, mdnrnn_loss
from worldmodels.run_layout import MDNRNN_LOG_NAME, VAE_LOG_NAME
from worldmodels.vae import ConvVAE, vae_loss

Z_SIZE = 32
ACTION_SIZE = 3
UNITS = {"vae": "frames/s", "mdnrnn": "seq-steps/s"}
TRAINING_ROWS = {  # name: (resident, precision); "reference" is the plain loop
    "reference": (False, "float32"),
    "streamed": (False, "float32"),
    "resident": (True, "float32"),
    "streamed bf16": (False, "bfloat16"),
    "resident bf16": (True, "bfloat16"),
}
DATA_ROWS = ("per-item DataLoader", "streamed batches", "resident batches")


def stage_config(args: argparse.Namespace, resident: bool, precision: str) -> Config:
    """The paper-sized stages with the benchmark's batch sizes and the row's data path and precision."""
    return load_config("carracing", [
        f"device={args.device}", f"vae.z_size={Z_SIZE}", f"vae.batch_size={args.vae_batch}",
        f"vae.loader_workers={args.loader_workers}", "vae.epochs=1000000", f"vae.checkpoint_every={10 * args.steps}",
        f"vae.resident={str(resident).lower()}", f"vae.precision={precision}",
        f"mdnrnn.steps={args.steps}", f"mdnrnn.batch_size={args.mdnrnn_batch}", f"mdnrnn.seq_len={args.seq_len}",
        f"mdnrnn.checkpoint_every={10 * args.steps}", f"mdnrnn.resident={str(resident).lower()}",
        f"mdnrnn.precision={precision}",
    ])


def steady_rate(log_path: Path, column: str) -> float:
    """Throughput of a training CSV log over its rows after the first (warm-up) one, when there are others: the
    harmonic mean of the rows' rates, which is items over time for rows of equal item counts (the arithmetic
    mean would overstate it when the rate varies)."""
    with log_path.open(newline="") as file:
        rates = [float(row[column]) for row in csv.DictReader(file)]
    steady = rates[1:] or rates
    return len(steady) / sum(1 / rate for rate in steady)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(loader: Iterable, step: Callable, steps: int, warmup: int, device: torch.device) -> float:
    """Items per second of ``step`` over ``loader`` (epoch after epoch) for ``steps`` calls, the first
    ``warmup`` of them untimed; ``step`` returns the items its batch held."""
    done, items, started = 0, 0.0, 0.0
    while done < steps:
        for batch in loader:
            if done == warmup:
                synchronize(device)
                started, items = time.perf_counter(), 0.0
            items += float(step(batch))
            done += 1
            if done == steps:
                break
    synchronize(device)
    return items / (time.perf_counter() - started)


def reference_rate(stage: str, config: Config, files: list[Path], steps: int, warmup: int) -> float:
    """The plain float32 loop: a DataLoader collating one frame (window) at a time, the stage's model and loss."""
    device = resolve_device(config.device)
    torch.manual_seed(0)
    if stage == "vae":
        cfg = config.vae
        model: nn.Module = ConvVAE(z_size=Z_SIZE).to(device)
        dataset: FrameDataset | SequenceDataset = FrameDataset(files, buffer_episodes=cfg.buffer_episodes)
        workers = cfg.loader_workers
    else:
        cfg = config.mdnrnn
        model = MDNRNN(Z_SIZE, ACTION_SIZE, cfg.hidden_size, cfg.num_mixtures).to(device)
        dataset = SequenceDataset(files, seq_len=cfg.seq_len, source="latents", buffer_episodes=cfg.buffer_episodes)
        workers = 0
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=workers, pin_memory=device.type == "cuda")

    def vae_step(frames: torch.Tensor) -> int:
        x = frames.to(device, non_blocking=True).float().div_(255)  # (B, C, 64, 64)
        out = model(x)
        loss = vae_loss(x, out.recon, out.mu, out.logvar, config.vae.kl_tolerance)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        return x.shape[0]

    def mdnrnn_step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = {name: value.to(device, non_blocking=True) for name, value in batch.items()}
        z = ConvVAE.sample_latent(batch["mu"], batch["logvar"])  # (B, L+1, Z)
        loss = mdnrnn_loss(model(z[:, :-1], batch["actions"]), z[:, 1:], mask=batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.mdnrnn.grad_clip)
        optimizer.step()
        return batch["mask"].sum()

    return timed_steps(loader, vae_step if stage == "vae" else mdnrnn_step, steps, warmup, device)


def stage_rate(stage: str, config: Config, data: Path, steps: int, log_every: int) -> float:
    """The training stage's own throughput, from its CSV log."""
    with tempfile.TemporaryDirectory() as run:
        if stage == "vae":
            from worldmodels.train_vae import train_vae

            train_vae(config, data, run, progress=False, log_every=log_every, max_steps=steps)
            return steady_rate(Path(run) / VAE_LOG_NAME, "frames_per_s")
        from worldmodels.train_mdnrnn import train_mdnrnn

        train_mdnrnn(config, data, run, progress=False, log_every=log_every)
        return steady_rate(Path(run) / MDNRNN_LOG_NAME, "seq_steps_per_s")


def data_rate(stage: str, path: str, config: Config, files: list[Path]) -> float:
    """Items (frames, sequence steps) per second of the data path alone, over its second epoch."""
    device = resolve_device(config.device)
    cfg = config.vae if stage == "vae" else config.mdnrnn
    batch_size = None if path == "per-item DataLoader" else cfg.batch_size
    if stage == "vae":
        dataset: FrameDataset | SequenceDataset = FrameDataset(files, buffer_episodes=cfg.buffer_episodes,
                                                               batch_size=batch_size)
    else:
        dataset = SequenceDataset(files, seq_len=cfg.seq_len, source="latents", buffer_episodes=cfg.buffer_episodes,
                                  batch_size=batch_size)
    if path == "resident batches":
        dataset.to(device)
    workers = config.vae.loader_workers if stage == "vae" and path != "resident batches" else 0
    loader = DataLoader(dataset, batch_size=None if batch_size else cfg.batch_size, num_workers=workers,
                        pin_memory=device.type == "cuda" and path != "resident batches")
    for _ in loader:  # the first epoch: warm page cache, the resident copy loaded
        pass
    dataset.set_epoch(1)
    synchronize(device)
    started, items = time.perf_counter(), 0.0
    for batch in loader:
        batch = batch.to(device, non_blocking=True) if stage == "vae" else batch["mask"].to(device).sum()
        items += len(batch) if stage == "vae" else float(batch)
    synchronize(device)
    return items / (time.perf_counter() - started)


def alternated_rates(stage: str, config: Config, rounds: int = 8, block_seconds: float = 0.5) -> dict[str, float]:
    """Items per second of the stage's training step in float32 and in bfloat16 autocast, on one fixed batch of
    random data (no data path), the two alternating in blocks of about ``block_seconds``, ``rounds`` blocks each:
    a change of the machine's load hits both alike."""
    device = resolve_device(config.device)
    torch.manual_seed(0)
    if stage == "vae":
        model: nn.Module = ConvVAE(z_size=Z_SIZE).to(device)
        x = torch.rand(config.vae.batch_size, 3, 64, 64, device=device)  # (B, C, 64, 64)

        def loss_of(bfloat16: bool) -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                out = model(x)
            return vae_loss(x, out.recon.float(), out.mu.float(), out.logvar.float()).total

        items = x.shape[0]
    else:
        cfg = config.mdnrnn
        model = MDNRNN(Z_SIZE, ACTION_SIZE, cfg.hidden_size, cfg.num_mixtures).to(device)
        z = torch.randn(cfg.batch_size, cfg.seq_len + 1, Z_SIZE, device=device)  # (B, L+1, Z)
        actions = torch.rand(cfg.batch_size, cfg.seq_len, ACTION_SIZE, device=device)  # (B, L, A)

        def loss_of(bfloat16: bool) -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                out = model(z[:, :-1], actions)
            out = out._replace(log_pi=out.log_pi.float(), mu=out.mu.float(), log_sigma=out.log_sigma.float())
            return mdnrnn_loss(out, z[:, 1:]).total

        items = cfg.batch_size * cfg.seq_len
    optimizer = torch.optim.Adam(model.parameters())

    def step(bfloat16: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_of(bfloat16).backward()
        optimizer.step()

    seconds, steps = {False: 0.0, True: 0.0}, {False: 0, True: 0}
    for bfloat16 in (False, True):  # warm-up
        step(bfloat16)
    for _ in range(rounds):
        for bfloat16 in (False, True):
            synchronize(device)
            started = time.perf_counter()
            while time.perf_counter() - started < block_seconds:
                step(bfloat16)
                steps[bfloat16] += 1
                synchronize(device)
            seconds[bfloat16] += time.perf_counter() - started
    return {"float32": steps[False] * items / seconds[False], "bfloat16": steps[True] * items / seconds[True]}


def measure(args: argparse.Namespace) -> dict[str, float]:
    """One row, in this process: its throughput and peak memory."""
    stage, kind, name = args.measure.split(":")
    if kind == "alternated":
        return alternated_rates(stage, stage_config(args, False, "float32"))
    files = list_episode_files(args.data)
    log_every = max(1, args.steps // 5)
    if kind == "data":
        rate = data_rate(stage, name, stage_config(args, False, "float32"), files)
    elif name == "reference":
        rate = reference_rate(stage, stage_config(args, False, "float32"), files, args.steps, log_every)
    else:
        rate = stage_rate(stage, stage_config(args, *TRAINING_ROWS[name]), args.data, args.steps, log_every)
    device = resolve_device(args.device)
    result = {"rate": rate, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if kind == "train":
        dtype = torch.bfloat16 if TRAINING_ROWS[name][1] == "bfloat16" else torch.float32
        result["matmul_flops"] = matmul_rate(device, dtype)
    return result


def run_measurement(row: str, args: argparse.Namespace) -> dict[str, float]:
    """:func:`measure` in a fresh subprocess, so its peak RSS is its own."""
    command = [sys.executable, __file__, "--measure", row, "--data", str(args.data), "--device", args.device,
               "--steps", str(args.steps), "--vae-batch", str(args.vae_batch), "--mdnrnn-batch", str(args.mdnrnn_batch),
               "--seq-len", str(args.seq_len), "--loader-workers", str(args.loader_workers),
               "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measurement {row} on {args.device} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def matmul_rate(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """FLOP/s of a loop of square matrix products in ``dtype`` (n = 2048 on the CPU, 8192 on a GPU)."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    a @ b  # warm-up
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
        if device.type == "cuda" and count % 10:
            continue
        synchronize(device)
    synchronize(device)
    return 2 * n**3 * count / (time.perf_counter() - started)


def multiply_adds(model: nn.Module, run: Callable[[], object]) -> list[int]:
    """Multiply-adds of each convolution, transposed convolution, dense and LSTM layer in one call of ``run``
    (a batch of one item), in the order they ran; an LSTM counts per step, its input product first."""
    counts: list[int] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: object) -> None:
        if isinstance(module, nn.Conv2d):
            counts.append(output.numel() * module.in_channels // module.groups * module.weight[0, 0].numel())
        elif isinstance(module, nn.ConvTranspose2d):
            counts.append(inputs[0].numel() * module.out_channels // module.groups * module.weight[0, 0].numel())
        elif isinstance(module, nn.Linear):
            counts.append(output.numel() // module.out_features * module.weight.numel())
        elif isinstance(module, nn.LSTM):
            counts.extend([module.weight_ih_l0.numel(), module.weight_hh_l0.numel()])

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.LSTM))]
    with torch.no_grad():
        run()
    for handle in handles:
        handle.remove()
    return counts


def training_flops() -> dict[str, float]:
    """FLOPs of one training step per item: 2 x (3 x the forward's multiply-adds - the first layer's)."""
    vae, mdnrnn = ConvVAE(z_size=Z_SIZE), MDNRNN(Z_SIZE, ACTION_SIZE)
    counts = {"vae": multiply_adds(vae, lambda: vae(torch.zeros(1, 3, 64, 64))),
              "mdnrnn": multiply_adds(mdnrnn, lambda: mdnrnn(torch.zeros(1, 1, Z_SIZE),
                                                             torch.zeros(1, 1, ACTION_SIZE)))}
    return {stage: 2 * (3 * sum(c) - c[0]) for stage, c in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--episodes", type=int, default=100, help="synthetic episodes (default: %(default)s)")
    parser.add_argument("--episode-steps", type=int, default=100, help="steps per synthetic episode")
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per training row")
    parser.add_argument("--vae-batch", type=int, default=64, help="V's batch (frames)")
    parser.add_argument("--loader-workers", type=int, default=0, help="V's DataLoader worker processes (streaming)")
    parser.add_argument("--mdnrnn-batch", type=int, default=16, help="M's batch (sequences)")
    parser.add_argument("--seq-len", type=int, default=50, help="M's sequence length")
    parser.add_argument("--stages", default="vae,mdnrnn", help="stages to measure, comma-separated")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads per row (default: torch's, %(default)s)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every row this many times, rows interleaved, and keep each row's fastest")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure:
        print(json.dumps(measure(args)))
        return

    device = resolve_device(args.device)
    args.device = device.type
    flops = training_flops()
    stages = args.stages.split(",")
    rows = []  # (stage, row id, row name, precision: None for data rows)
    for stage in stages:
        rows += [(stage, f"{stage}:train:{name}", name, precision) for name, (_, precision) in TRAINING_ROWS.items()]
        rows += [(stage, f"{stage}:data:{name}", f"data only: {name}", None) for name in DATA_ROWS]
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as root:
        args.data = Path(root) / "episodes"
        write_projected_latents(write_synthetic_episodes(args.data, args.episodes, args.episode_steps), Z_SIZE)
        for round_ in range(args.rounds):
            for _, row, _, _ in rows:
                result = run_measurement(row, args)
                if row not in best or result["rate"] > best[row]["rate"]:
                    best[row] = result
                print(f"  round {round_ + 1}: {row} {result['rate']:,.0f}", file=sys.stderr)
        alternated = {stage: run_measurement(f"{stage}:alternated:", args) for stage in stages}

    gpu_name = f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""
    print(f"\ntorch {torch.__version__}, {args.device}{gpu_name}, {torch.get_num_threads()} CPU threads; "
          f"fastest of {args.rounds} round(s); "
          f"{args.episodes} episodes of {args.episode_steps} steps; {args.steps} steps per training row; V batch "
          f"{args.vae_batch} frames, {args.loader_workers} loader workers; M batch {args.mdnrnn_batch} x "
          f"{args.seq_len}")
    print(f"training FLOPs per item: V {flops['vae'] / 1e6:.1f} MFLOP/frame, M {flops['mdnrnn'] / 1e6:.2f} "
          "MFLOP/seq-step; 'of matmul': of the row's matmul TFLOP/s (float32, bfloat16 for bf16 rows)")
    print(f"{'stage':<8}{'row':<34}{'throughput':>12}  {'unit':<12}{'x ref':>7}{'TFLOP/s':>9}{'matmul':>8}"
          f"{'of matmul':>10}{'peak RSS MB':>12}{'peak GPU MB':>12}")
    for stage, row, name, precision in rows:
        result = best[row]
        reference = best[f"{stage}:{'train:reference' if precision else 'data:' + DATA_ROWS[0]}"]["rate"]
        if precision is None:
            achieved = matmul = share = "-"
        else:
            rate = result["rate"] * flops[stage]
            achieved, matmul = f"{rate / 1e12:.3f}", f"{result['matmul_flops'] / 1e12:.3f}"
            share = f"{rate / result['matmul_flops']:.1%}"
        gpu = f"{result['peak_gpu_mb']:.0f}" if "peak_gpu_mb" in result else "-"
        print(f"{stage:<8}{name:<34}{result['rate']:>12,.0f}  {UNITS[stage]:<12}{result['rate'] / reference:>7.2f}"
              f"{achieved:>9}{matmul:>8}{share:>10}{result['peak_rss_mb']:>12.0f}{gpu:>12}")
    print("training steps alone (one fixed random batch, no data path), float32 and bfloat16 alternating in one "
          "process:")
    for stage, rates in alternated.items():
        print(f"{stage:<8}float32 {rates['float32']:>12,.0f}  bfloat16 {rates['bfloat16']:>12,.0f}  {UNITS[stage]:<12}"
              f"x {rates['bfloat16'] / rates['float32']:.2f}")


if __name__ == "__main__":
    main()
