"""Dream steps per second: the batched DreamSimulator against stepping one dream at a time.

    python benchmarks/dream_speed.py --device cpu --steps 50
    python benchmarks/dream_speed.py --device cuda --steps 200 --compile

CarRacing sizes: z 32, LSTM 256, 5 mixtures per dimension, action 3, controller tanh(W [z, h] + b) with 867
parameters; M untrained with a reward head (a step costs the same whatever the weights) and no done head, so
every dream runs --steps steps. The batched simulator steps B dreams as one batch of tensors, each with its own
controller. The reference loop steps one dream at a time, as the public implementations do: per dream and
step one controller matmul and one ``MDNRNN.sample`` (LSTM step, mixture draw), and the reward read back to
Python, on one CPU thread (one such worker per core). Its rate does not depend on B, so it is measured once,
over --reference-steps dream steps.
Times are the best of --repeats runs after a warm-up (and, with --compile, compilation).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from worldmodels.controller import Controller
from worldmodels.device import resolve_device
from worldmodels.dream import DreamSettings, DreamSimulator, StartLatents
from worldmodels.mdnrnn import MDNRNN

Z, H, K, A = 32, 256, 5, 3
TEMPERATURE = 1.15


def build(device: torch.device, steps: int) -> tuple[MDNRNN, DreamSimulator]:
    """A paper-sized untrained M (with a reward head) and a simulator over it; starts are random latents."""
    torch.manual_seed(0)
    mdnrnn = MDNRNN(Z, A, H, K, reward_head=True).eval().to(device)
    rng = np.random.default_rng(0)
    starts = StartLatents(rng.normal(size=(100, Z)).astype(np.float32), np.full((100, Z), -2.0, np.float32))
    settings = DreamSettings(temperature=TEMPERATURE, max_steps=steps, inputs="zh")
    return mdnrnn, DreamSimulator(mdnrnn, starts, settings, device=device)


def batched_rate(simulator: DreamSimulator, batch: int, repeats: int) -> float:
    """Dream steps/s of ``simulator.rollout`` over ``batch`` dreams (best of ``repeats`` after a warm-up)."""
    params = np.random.default_rng(1).normal(0, 0.1, (batch, simulator.num_params)).astype(np.float32)
    seeds = np.arange(batch)
    settings = simulator.settings
    simulator.settings = replace(settings, max_steps=2)
    simulator.rollout(params, seeds)  # warm-up (and compilation)
    simulator.settings = settings
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        simulator.rollout(params, seeds)  # returns numpy: waits for the device
        best = min(best, time.perf_counter() - start)
    return batch * settings.max_steps / best


def reference_rate(mdnrnn: MDNRNN, device: torch.device, dream_steps: int, steps: int) -> float:
    """Dream steps/s stepping one dream at a time on one CPU thread (``dream_steps`` in all, episodes of
    ``steps`` steps). One thread, as the public implementations run one such worker process per core (with
    more threads, torch's tiny parallel regions make it slower still when other processes share the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _reference_loop(mdnrnn, device, dream_steps, steps)
    finally:
        torch.set_num_threads(threads)


@torch.inference_mode()
def _reference_loop(mdnrnn: MDNRNN, device: torch.device, dream_steps: int, steps: int) -> float:
    """The loop of :func:`reference_rate`."""
    controller = Controller(Z, H, A, "zh")
    rng = np.random.default_rng(1)
    generator = torch.Generator(device).manual_seed(0)
    done_steps = 0
    start = time.perf_counter()
    while done_steps < dream_steps:
        controller.set_flat(rng.normal(0, 0.1, controller.num_params))
        z = torch.randn(1, Z, generator=generator, device=device)  # (1, Z)
        state = mdnrnn.initial_state(1, device)
        total = 0.0
        for _ in range(min(steps, dream_steps - done_steps)):
            action = controller.act(torch.cat([z, state[0][0]], dim=1))  # (1, A)
            sample = mdnrnn.sample(z, action, state, TEMPERATURE, generator)
            z, state = sample.z, sample.state
            total += float(sample.reward[0])  # read back to Python each step, as the public loops do
            done_steps += 1
    return done_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--steps", type=int, default=50, help="steps per dream")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024, 16384], help="values of B")
    parser.add_argument("--reference-steps", type=int, default=2000, help="dream steps the reference loop runs")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per B (the best counts)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the batched step (CUDA graphs on cuda: mode reduce-overhead)")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    mdnrnn, simulator = build(device, args.steps)
    if args.compile:
        mode = "reduce-overhead" if device.type == "cuda" else None
        simulator.step = torch.compile(simulator.step, mode=mode)  # type: ignore[method-assign]
    reference = reference_rate(mdnrnn, device, args.reference_steps, args.steps)

    print(f"\ndevice {device} ({torch.get_num_threads()} CPU threads), {args.steps} steps per dream, "
          f"z {Z}, LSTM {H}, {K} mixtures, action {A}, controller [z, h] ({simulator.num_params} params)"
          f"{', compiled' if args.compile else ''}")
    print(f"reference: one dream at a time, 1 thread: {reference:,.0f} dream steps/s")
    print(f"{'B':>7}{'batched steps/s':>18}{'ms/step':>10}{'x reference':>13}")
    for batch in args.batches:
        rate = batched_rate(simulator, batch, args.repeats)
        print(f"{batch:>7}{rate:>18,.0f}{batch / rate * 1e3:>10.2f}{rate / reference:>13.1f}")


if __name__ == "__main__":
    main()
