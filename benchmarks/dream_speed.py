"""Dream steps per second: the batched DreamSimulator against the fastest plain public loop and the hardware.

    python benchmarks/dream_speed.py --sizes carracing
    python benchmarks/dream_speed.py --sizes doom
    python benchmarks/dream_speed.py --sizes doom --device cuda --compile
    python benchmarks/dream_speed.py --sizes doom --dropout 0.05     # dropout dreams: one mask per dream
    python benchmarks/dream_speed.py --sizes doom --members 3        # an ensemble of 3 Ms beside one M

Sizes (M untrained: a step costs the same whatever the weights):
  carracing  z 32, LSTM 256, 5 mixtures per dimension, action 3, controller tanh(W [z, h] + b) (867 params),
             M with a reward head and no done head: every dream runs --steps steps.
  doom       z 64, LSTM 512, 5 mixtures, action 1, controller tanh(W [z, c, h]) without bias (1,088 params),
             M with a done head (weights x10, bias -0.95: dreams die at various times, from ~100 steps to the
             2,100-step cap, about half the steps alive), survival reward. Its all-alive rows use a done bias
             of -30 (no dream ends).

Reference: one dream at a time, as ctallec's SimulatedCarracing steps it: the controller's nn.Linear, an
nn.LSTMCell, the heads' nn.Linear, one mixture component per dimension drawn with torch.multinomial, the
Gaussian draw, and the reward (or done) read back to Python every step, on one CPU thread; the public
implementations run one such worker process per core. Measured in this process (1 thread), and as
one process per core this process may run on (os.sched_getaffinity), in parallel: the machine's reference
throughput, against which "x reference" is counted. Its rate does not depend on B.

Hardware limit: loops of (1024 x 1024) @ (1024 x 1024) matrix products in float32 and in bfloat16 (where the
device has bf16 arithmetic), measured in the same run, through torch.mm (the BLAS: MKL on the CPU) and through
the dream's own product (worldmodels.dream.linear: oneDNN on the CPU); the faster of the two is the limit (on an
AMD EPYC, MKL's float32 GEMM ran at less than half oneDNN's). FLOPs per dream step, 2 per multiply-add, counted
from the shapes (elementwise work, the mixture draw and the noise not counted): LSTM gates 2 (Z + A + 1 + H) 4H,
heads 2 H (3KZ + R + D), controller 2 F A (R, D: 1 with a reward, done head; F: the controller's input size):
carracing 0.846 MFLOP, doom 3.354 MFLOP. "% limit" is steps/s x FLOPs per step over that precision's limit.

Rows: every precision (float32; bfloat16 where the device has it) x every B of --batches, all dreams alive;
the best of --repeats runs after a warm-up (and, with --compile, compilation). The matmul rates, the reference and
these rows are measured --rounds times, interleaved, each keeping its best: steadier on a machine shared with other
work. With a done head (doom), a
generation-like batch: --popsize candidates of a first CMA-ES generation (mean 0, sigma 0.1) x --rollouts
seeds shared by every candidate, dreams that end, up to --ending-steps steps, once masked (compact_below 0:
every dream stepped until all have ended) and once with ended dreams dropped (the default), per precision;
"all alive" is the time B x --ending-steps steps take at the all-alive rate of B = popsize x rollouts.

With --members E > 1, every row is measured for one M and for an ensemble of E Ms (seeds 0..E-1, ensemble
"member"), interleaved in the same rounds; "x one M" is the ensemble's time per step over one M's at the same
precision and B (E would be exactly E times the matrix products).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodels.device import resolve_device
from worldmodels.dream import PRECISION_DTYPES, DreamSettings, DreamSimulator, StartLatents, linear, matmul_dtype
from worldmodels.mdnrnn import MDNRNN

TEMPERATURE = 1.15
MIXTURES = 5
ENDING_DONE = (10.0, -0.95)
"""Doom's done head for dreams that end: its weights scaled by 10, its bias; lifetimes spread up to the cap."""
ALIVE_DONE_BIAS = -30.0


@dataclass(frozen=True)
class Sizes:
    """The shapes of one game's world model and controller."""

    z: int
    hidden: int
    action: int
    inputs: str
    bias: bool
    reward_head: bool
    done_head: bool

    @property
    def controller_inputs(self) -> int:
        return self.z + self.hidden * {"z": 0, "zh": 1, "zch": 2}[self.inputs]

    @property
    def flops(self) -> int:
        """FLOPs per dream step of the matrix products (2 per multiply-add)."""
        gates = (self.z + self.action + 1 + self.hidden) * 4 * self.hidden
        heads = self.hidden * (3 * MIXTURES * self.z + self.reward_head + self.done_head)
        return 2 * (gates + heads + self.controller_inputs * self.action)


SIZES = {"carracing": Sizes(32, 256, 3, "zh", True, reward_head=True, done_head=False),
         "doom": Sizes(64, 512, 1, "zch", False, reward_head=False, done_head=True)}


def build_mdnrnn(sizes: Sizes, ending: bool, dropout: float = 0.0, seed: int = 0) -> MDNRNN:
    """The untrained M of ``sizes`` (``seed``) as trained with ``dropout``; with a done head, dreams end when
    ``ending`` and never otherwise."""
    torch.manual_seed(seed)
    mdnrnn = MDNRNN(sizes.z, sizes.action, sizes.hidden, MIXTURES, sizes.reward_head, sizes.done_head,
                    dropout).eval()
    if mdnrnn.done_head is not None:
        scale, bias = ENDING_DONE if ending else (1.0, ALIVE_DONE_BIAS)
        with torch.no_grad():
            mdnrnn.done_head.weight.mul_(scale)
            mdnrnn.done_head.bias.fill_(bias)
    return mdnrnn


def build_simulator(sizes: Sizes, ending: bool, device: torch.device, dropout: float = 0.0, members: int = 1,
                    **settings: object) -> DreamSimulator:
    """A simulator over :func:`build_mdnrnn` (``members`` of them, seeds 0, 1, ...: an ensemble); starts are random
    latents; dropout > 0: dropout dreams at that rate."""
    rng = np.random.default_rng(0)
    starts = StartLatents(rng.normal(size=(100, sizes.z)).astype(np.float32),
                          np.full((100, sizes.z), -2.0, np.float32))
    reward_mode = "head" if sizes.reward_head else "survival"
    dream = DreamSettings(temperature=TEMPERATURE, inputs=sizes.inputs, bias=sizes.bias, reward_mode=reward_mode,
                          dropout_mask=dropout > 0, **settings)  # type: ignore[arg-type]
    mdnrnns = [build_mdnrnn(sizes, ending, dropout, seed) for seed in range(members)]
    return DreamSimulator(mdnrnns, starts, dream, device=device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rates(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> dict[str, float]:
    """FLOP/s of loops of (1024 x 1024) @ (1024 x 1024) products in ``dtype`` through torch.mm (the BLAS: MKL on
    the CPU) and through the dream's :func:`worldmodels.dream.linear` (oneDNN on the CPU); the best of 5 timed
    slices each."""
    n = 1024
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    products = {"torch.mm": lambda: torch.mm(a, b), "dream linear": lambda: linear(a, b, None)}
    rates = {}
    for name, product in products.items():
        product()  # warm-up
        best = 0.0
        for _ in range(5):
            synchronize(device)
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds / 5:
                product()
                count += 1
            synchronize(device)
            best = max(best, 2 * n**3 * count / (time.perf_counter() - started))
        rates[name] = best
    return rates


class ReferenceDream(nn.Module):
    """M and C as a public one-dream-at-a-time loop holds them: nn.LSTMCell, nn.Linear heads and controller."""

    def __init__(self, sizes: Sizes) -> None:
        super().__init__()
        mdnrnn = build_mdnrnn(sizes, ending=True)
        self.sizes = sizes
        self.cell = nn.LSTMCell(sizes.z + sizes.action, sizes.hidden)
        self.heads = nn.Linear(sizes.hidden, 3 * MIXTURES * sizes.z + sizes.reward_head + sizes.done_head)
        self.controller = nn.Linear(sizes.controller_inputs, sizes.action, bias=sizes.bias)
        with torch.no_grad():  # the same M: its constant-1 input column is the cell's input bias
            weight_ih = mdnrnn.lstm.weight_ih_l0
            self.cell.weight_ih.copy_(weight_ih[:, :-1])
            self.cell.bias_ih.copy_(weight_ih[:, -1])
            self.cell.weight_hh.copy_(mdnrnn.lstm.weight_hh_l0)
            self.cell.bias_hh.zero_()
            heads = [mdnrnn.mdn] + [head for head in (mdnrnn.reward_head, mdnrnn.done_head) if head is not None]
            self.heads.weight.copy_(torch.cat([head.weight for head in heads]))
            self.heads.bias.copy_(torch.cat([head.bias for head in heads]))

    @torch.inference_mode()
    def run(self, steps: int, max_steps: int, generator: torch.Generator) -> int:
        """Dream ``steps`` steps, one dream at a time (a new dream, with new controller weights, after each
        ends); returns the steps run."""
        sizes, K = self.sizes, MIXTURES
        mixture_size = 3 * K * sizes.z
        done_steps = 0
        while done_steps < steps:
            nn.init.normal_(self.controller.weight, 0.0, 0.1, generator=generator)
            z = torch.randn(1, sizes.z, generator=generator)  # (1, Z)
            h, c = torch.zeros(1, sizes.hidden), torch.zeros(1, sizes.hidden)  # (1, H) each
            total = 0.0
            for _ in range(min(max_steps, steps - done_steps)):
                x = torch.cat([z, h] if sizes.inputs == "zh" else [z, c, h], dim=1)  # (1, F)
                action = torch.tanh(self.controller(x))  # (1, A)
                h, c = self.cell(torch.cat([z, action], dim=1), (h, c))  # (1, H) each
                out = self.heads(h)[0]  # (3KZ + R + D,)
                log_pi, mu, log_sigma = out[:mixture_size].view(sizes.z, 3 * K).split(K, dim=1)  # (Z, K) each
                k = torch.multinomial(torch.softmax(log_pi / TEMPERATURE, dim=1), 1, generator=generator)  # (Z, 1)
                eps = torch.randn(sizes.z, 1, generator=generator)  # (Z, 1)
                z = (mu.gather(1, k) + log_sigma.gather(1, k).exp() * math.sqrt(TEMPERATURE) * eps).view(1, -1)
                done_steps += 1
                if sizes.reward_head:
                    total += out[mixture_size].item()  # read back every step, as the public loops do
                elif out[-1].item() > 0:
                    break
        return done_steps


def reference_rate(sizes_name: str, steps: int, max_steps: int, barrier: object = None, seed: int = 0) -> float:
    """Steps/s of :class:`ReferenceDream` on one thread over ``steps`` steps (after a warm-up and, when given,
    a barrier shared with the other processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = ReferenceDream(SIZES[sizes_name])
        generator = torch.Generator().manual_seed(seed)
        reference.run(max(steps // 10, 1), max_steps, generator)  # warm-up
        if barrier is not None:
            barrier.wait()  # type: ignore[attr-defined]
        started = time.perf_counter()
        done = reference.run(steps, max_steps, generator)
        return done / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)


def _reference_worker(sizes_name: str, steps: int, max_steps: int, barrier: object, seed: int,
                      results: multiprocessing.Queue) -> None:
    results.put(reference_rate(sizes_name, steps, max_steps, barrier, seed))


def parallel_reference_rate(sizes_name: str, steps: int, max_steps: int, processes: int) -> float:
    """Summed steps/s of ``processes`` reference processes (one thread each) stepping at the same time."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_reference_worker, args=(sizes_name, steps, max_steps, barrier, seed, results))
               for seed in range(processes)]
    for worker in workers:
        worker.start()
    rates = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return sum(rates)


def batched_rate(simulator: DreamSimulator, batch: int, steps: int, repeats: int) -> float:
    """Dream steps/s of ``simulator.rollout`` over ``batch`` dreams that all live ``steps`` steps (best of
    ``repeats`` after a warm-up)."""
    params = np.random.default_rng(1).normal(0, 0.1, (batch, simulator.num_params)).astype(np.float32)
    seeds = np.arange(batch)
    simulator.settings = replace(simulator.settings, max_steps=2)
    simulator.rollout(params, seeds)  # warm-up (and compilation)
    simulator.settings = replace(simulator.settings, max_steps=steps)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        simulator.rollout(params, seeds)  # returns numpy: waits for the device
        best = min(best, time.perf_counter() - started)
    return batch * steps / best


def generation(simulator: DreamSimulator, popsize: int, rollouts: int) -> tuple[float, np.ndarray]:
    """Seconds and dream lengths (P * R,) of one generation-like batch: ``popsize`` candidates N(0, 0.1^2)
    (a first CMA-ES generation) x ``rollouts`` seeds shared by every candidate, as ``agents/cmaes.py`` runs it."""
    candidates = np.random.default_rng(2).normal(0, 0.1, (popsize, simulator.num_params)).astype(np.float32)
    params = np.repeat(candidates, rollouts, axis=0)  # (P * R, D)
    seeds = np.tile(np.arange(rollouts), popsize)  # (P * R,)
    started = time.perf_counter()
    lengths = simulator.record(params, seeds, keep_z=False).lengths
    return time.perf_counter() - started, lengths


def compile_step(simulator: DreamSimulator, mode: str = "default") -> DreamSimulator:
    """``simulator`` with its batched step compiled with torch.compile's ``mode``.

    CUDA graphs (``reduce-overhead``) fail on the dream with torch 2.11: a step's sampled z is read after the graph's
    next replay has overwritten it ("accessing tensor output of CUDAGraphs that has been overwritten").
    """
    simulator.step = torch.compile(simulator.step, mode=mode)  # type: ignore[method-assign]
    return simulator


def supported_precisions(device: torch.device) -> list[str]:
    """The precisions the device computes natively (bfloat16 needs bf16 arithmetic)."""
    names = []
    for name in PRECISION_DTYPES:
        try:
            matmul_dtype(name, device)
        except ValueError:
            continue
        names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", choices=tuple(SIZES), default="carracing", help="the game's model sizes")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--steps", type=int, default=50, help="steps per dream of the all-alive rows")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024, 4096], help="values of B")
    parser.add_argument("--precisions", nargs="+", choices=tuple(PRECISION_DTYPES), default=None,
                        help="default: every precision the device has")
    parser.add_argument("--reference-steps", type=int, default=3000, help="dream steps each reference process runs")
    parser.add_argument("--reference-processes", type=int, default=len(os.sched_getaffinity(0)),
                        help="reference processes run in parallel (default: one per core)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row and round (the best counts)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every all-alive measurement, interleaved (the best of each counts)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--popsize", type=int, default=64, help="candidates of the generation-like batch")
    parser.add_argument("--rollouts", type=int, default=16, help="rollouts per candidate (0: no ending rows)")
    parser.add_argument("--ending-steps", type=int, default=2100, help="step cap of the generation-like batch")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the batched step (see --compile-mode)")
    parser.add_argument("--compile-mode", default="default",
                        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                        help="torch.compile's mode with --compile (reduce-overhead, CUDA graphs, fails on the dream)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout dreams: M with this dropout rate, one mask per dream (0: plain dreams)")
    parser.add_argument("--members", type=int, default=1,
                        help="E > 1: every row also for an ensemble of E Ms, beside one M (1: one M only)")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sizes = SIZES[args.sizes]
    precisions = args.precisions or supported_precisions(device)
    reference_cap = args.ending_steps if sizes.done_head else args.steps
    ensembles = sorted({1, args.members})
    simulators = {}
    for precision in precisions:
        for members in ensembles:
            simulators[precision, members] = build_simulator(sizes, False, device, args.dropout, members,
                                                             precision=precision)
            if args.compile:
                compile_step(simulators[precision, members], args.compile_mode)
    rates: dict[str, dict[str, float]] = {}
    single = reference = 0.0
    alive_rates: dict[tuple[str, int, int], float] = {}
    for _ in range(args.rounds):  # every measurement once per round, the best kept: steadier on a shared machine
        for name in supported_precisions(device):
            by_product = matmul_rates(device, PRECISION_DTYPES[name])
            rates[name] = {product: max(rate, rates.get(name, {}).get(product, 0.0))
                           for product, rate in by_product.items()}
        single = max(single, reference_rate(args.sizes, args.reference_steps, reference_cap))
        reference = max(reference, parallel_reference_rate(args.sizes, args.reference_steps, reference_cap,
                                                           args.reference_processes))
        for precision in precisions:
            for batch in args.batches:
                for members in ensembles:
                    rate = batched_rate(simulators[precision, members], batch, args.steps, args.repeats)
                    key = precision, batch, members
                    alive_rates[key] = max(rate, alive_rates.get(key, 0.0))
    limits = {name: max(by_product.values()) for name, by_product in rates.items()}

    print(f"\nsizes {args.sizes}: z {sizes.z}, LSTM {sizes.hidden}, {MIXTURES} mixtures, action {sizes.action}, "
          f"controller [{', '.join(sizes.inputs)}]{'' if sizes.bias else ' without bias'}; "
          f"{sizes.flops / 1e6:.3f} MFLOP per dream step"
          + (f"; dropout dreams at rate {args.dropout}" if args.dropout else ""))
    print(f"device {device} ({torch.get_num_threads()} CPU threads){', compiled' if args.compile else ''}; "
          f"load average {os.getloadavg()[0]:.2f} ({os.getloadavg()[1]:.2f} over 5 min) on {os.cpu_count()} CPUs; "
          f"the best of {args.rounds} rounds")
    for name, by_product in rates.items():
        print(f"matmul (1024^3) {name}: " + ", ".join(f"{product} {rate / 1e9:,.0f}" for product, rate in by_product.items())
              + f" GFLOP/s; the limit: {limits[name] / sizes.flops:,.0f} dream steps/s")
    print(f"reference, one dream at a time (1 thread): {single:,.0f} steps/s in 1 process, {reference:,.0f} in "
          f"{args.reference_processes} processes at once (the reference)\n")
    print("| precision | B | Ms | steps/s | ms/step | x one M | x reference | "
          + " | ".join(f"% {name} limit" for name in limits) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(limits))
    for (precision, batch, members), rate in alive_rates.items():
        shares = " | ".join(f"{100 * rate * members * sizes.flops / limit:.0f}" for limit in limits.values())
        cost = alive_rates[precision, batch, 1] / rate
        print(f"| {precision} | {batch:,} | {members} | {rate:,.0f} | {batch / rate * 1e3:.2f} | {cost:.2f} | "
              f"{rate / reference:.1f} | {shares} |")

    if not sizes.done_head or args.rollouts == 0:
        return
    batch = args.popsize * args.rollouts
    print(f"\ngeneration-like batch: {args.popsize} candidates x {args.rollouts} rollouts = {batch:,} dreams, "
          f"up to {args.ending_steps:,} steps (one run each)\n")
    print("| precision | Ms | ended dreams | s/batch | x all alive | live steps | mean length | live steps/s | "
          "x reference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for precision, members in ((precision, members) for precision in precisions for members in ensembles):
        if (precision, batch, members) not in alive_rates:
            alive_rates[precision, batch, members] = batched_rate(simulators[precision, members], batch, args.steps,
                                                                  args.repeats)
        all_alive = batch * args.ending_steps / alive_rates[precision, batch, members]
        for path, compact_below in (("masked", 0.0), ("dropped", DreamSettings.compact_below)):
            simulator = build_simulator(sizes, True, device, args.dropout, members, precision=precision,
                                        max_steps=args.ending_steps, compact_below=compact_below)
            if args.compile:
                compile_step(simulator, args.compile_mode)
            seconds, lengths = generation(simulator, args.popsize, args.rollouts)
            live = int(lengths.sum())
            print(f"| {precision} | {members} | {path} | {seconds:.1f} | {seconds / all_alive:.2f} | {live:,} | "
                  f"{lengths.mean():,.0f} | {live / seconds:,.0f} | {live / seconds / reference:.1f} |")

if __name__ == "__main__":
    main()
