"""The ``worldmodels`` commands that live in ``agents``: ``train-controller``, ``evaluate``, ``run``,
``temperature-sweep``, ``calibrate``, ``compare-runs``, ``compare-evaluations`` and ``baseline``.

Registered through the ``worldmodels.commands`` entry point (pyproject.toml), so ``worldmodels.cli`` never
imports this package.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

from worldmodels.commands import (
    MODELS_RUN_HELP,
    add_command,
    add_ray_address_option,
    checked_config,
    config_from_args,
    lock_run,
    non_negative_int,
    positive_int,
    run_config,
    start_ray,
)
from worldmodels.config_schema import CALIBRATION_SCALES, PUBLISHED_TEMPERATURES, BaselineObsName, ControllerEnvName
from worldmodels.run_layout import CONTROLLER_DIR, EPISODES_DIR, EVALUATION_NAME, SUMMARY_NAME, WORST_EPISODES_DIR

# Each command imports what it runs (torch, Ray, pycma: seconds), so building the parser and --help stay fast.


def _print_generation(record: Any) -> None:
    """Print an ``agents.cmaes.GenerationRecord``."""
    print(f"train-controller: {record.describe()}", flush=True)


def cmd_train_controller(args: argparse.Namespace) -> None:
    """Evolve C with CMA-ES from RUN/vae.pt and RUN/mdnrnn.pt, in the real env, in M's dream or in the dream then
    the real env; outputs in RUN/controller/ (resumes)."""
    from agents.cmaes import generations_done
    from agents.controller_training import train_controller

    if args.temperature is not None:
        args.set.append(f"dream.temperature={args.temperature}")
    if args.env is not None:
        args.set.append(f"controller.train_in={args.env}")
    config = run_config(args)
    start_ray(args, config)
    records = train_controller(config, args.run, args.data or Path(args.run) / EPISODES_DIR,
                               on_generation=_print_generation)
    out = Path(args.run) / CONTROLLER_DIR
    print(f"train-controller: {len(records)} generations run, {generations_done(out)} done in all -> {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Run a trained controller on --episodes distinct seeds in parallel; write JSON and print mean +- std."""
    from agents.real_env import evaluate_controller_real

    config = config_from_args(args)
    episodes = config.evaluate.episodes if args.episodes is None else args.episodes
    start_ray(args, config)
    out = args.out or Path(args.run) / EVALUATION_NAME
    worst_dir = out.parent / WORST_EPISODES_DIR
    report = evaluate_controller_real(config, args.run, episodes, args.params, gif=args.gif,
                                      worst_gifs=args.gif_worst, worst_dir=worst_dir)
    report.write_json(out)
    print(f"evaluate: {report.summary()} -> {out}" + (f", first episode as {args.gif}" if args.gif else ""))
    if args.gif_worst:
        print(f"evaluate: the {min(args.gif_worst, report.episodes)} lowest-return episodes as GIFs in {worst_dir}")
    if args.pretrained:
        from worldmodels.pretrained import model_card_path

        card = model_card_path(args.pretrained)
        if card is not None:
            print(f"evaluate: the scores the agent was shipped with are in its model card, {card}")


def cmd_run(args: argparse.Namespace) -> None:
    """Run every stage of the preset into --run (collect, V, encode, M, C, evaluate, pictures), skipping what is
    done and resuming what was interrupted; ends with the real-env score and RUN/summary.json. With
    --iterations N, rounds 2..N of the iterative procedure follow in RUN/iterations/k/."""
    from agents.pipeline import run_pipeline

    if args.iterations is not None:
        args.set.append(f"iterate.iterations={args.iterations}")
    config = run_config(args)
    start_ray(args, config)
    summary = run_pipeline(config, args.run, say=lambda line: print(line, flush=True))
    for entry in summary["rounds"][:-1]:
        print(f"run: round {entry['round']}: {_describe_score(entry['score'])}")
    print(f"run: {_describe_score(summary['score'])}, {summary['env_steps_total']} env steps -> "
          f"{Path(args.run) / SUMMARY_NAME}")


def _describe_score(score: dict) -> str:
    """A summary.json score as people read it: mean +- std, the episodes and the seeds that replay them."""
    last_seed = score["first_seed"] + score["episodes"] - 1
    return (f"{score['mean']:.1f} +- {score['std']:.1f} over {score['episodes']} real episodes "
            f"(seeds {score['first_seed']}..{last_seed})")


def cmd_temperature_sweep(args: argparse.Namespace) -> None:
    """Evolve one controller in the dream per temperature, score each in the dream and the real env, and write
    the paper's table to RUN/temperature_sweep.md and .json; the sweep's config goes to RUN/sweep/config.yaml,
    the run's own config.yaml is left as it is."""
    from agents.temperature_sweep import markdown_table, published_table, temperature_sweep

    config = checked_config(args)
    lock_run(args)
    start_ray(args, config)
    rows = temperature_sweep(config, args.run, args.data or Path(args.run) / EPISODES_DIR, tuple(args.temperatures),
                             on_generation=lambda tau, record: print(f"temperature-sweep: tau {tau:g}: "
                                                                     f"{record.describe()}", flush=True))
    print(markdown_table(rows, published_table(config)), end="")


def cmd_calibrate(args: argparse.Namespace) -> None:
    """Score fixed controllers (zeros, random weights, the run's evolved ones) and the mean of a short dream search
    on the same seeds in M's dream and in the real env: is the dream calibrated, where does C exploit M? Writes
    RUN/calibration.md, .json, .png and the trust summary RUN/calibration_trust.json (judged by the ``trust``
    settings)."""
    from agents.calibration import calibrate, markdown_table

    if args.probe_generations is not None:
        args.set.append(f"trust.probe_generations={args.probe_generations}")
    config = config_from_args(args)
    start_ray(args, config)
    result = calibrate(config, args.run, args.data or Path(args.run) / EPISODES_DIR, args.episodes,
                       tuple(args.scales), args.random, args.params)
    print(markdown_table(result), end="")
    trust = result.trust(config.trust)
    print("\n".join(["", *trust.describe(), *filter(None, [trust.warning()])]))


def cmd_compare_runs(args: argparse.Namespace) -> None:
    """Set finished runs side by side, score against compute: real score, real env steps, dream steps and search
    time of each run's controller in OUT/comparison.md, and the real return of each mean solution against real env
    steps in OUT/real_return_per_real_step.png. Reads the run folders only."""
    from agents.run_comparison import CURVES_NAME, TABLE_NAME, compare_runs, markdown_table

    rows = compare_runs(args.runs, args.out, args.labels)
    print(markdown_table(rows), end="")
    print(f"wrote {args.out / TABLE_NAME} and {args.out / CURVES_NAME}")


def cmd_compare_evaluations(args: argparse.Namespace) -> None:
    """Two evaluation reports (evaluation.json of `worldmodels evaluate`) on the same seeds: each score, their paired
    difference seed by seed with its standard error, and what the two scores rest on that differs."""
    from agents.evaluation import EvaluationReport, PairedComparison

    first, second = (EvaluationReport.read_json(path) for path in args.reports)
    comparison = PairedComparison.of(first, second)
    for label, path, report in zip(("first", "second"), args.reports, (first, second)):
        print(f"{label}: {path}: {report.summary()}")
    print(comparison.describe())
    if comparison.differences is None:
        print("what they rest on: unknown (a report written by an earlier version records no provenance)")
    else:
        same = "nothing recorded (the same controller, V, M and settings)"
        print(f"they differ in: {', '.join(comparison.differences) or same}")


def cmd_baseline(args: argparse.Namespace) -> None:
    """Train a stable-baselines3 agent on pixels, on V and M's latents, or in M's dream; save it as
    RUN/baselines/{algo}_{obs}.zip and its real-env evaluation (mean +- std) beside it as .json."""
    from agents.sb3 import run_baseline

    for key in ("algo", "obs", "timesteps"):
        if getattr(args, key) is not None:
            args.set.append(f"baseline.{key}={getattr(args, key)}")
    config = run_config(args)
    result = run_baseline(config, args.run, args.data, episodes=args.episodes)
    model, steps = result.agent.model, "dream" if config.baseline.obs == "dream" else "env"
    print(f"baseline: {type(model).__name__} on {config.baseline.obs}, {model.num_timesteps} {steps} steps in "
          f"{result.agent.seconds:.1f} s -> {result.path}; real env: {result.report.summary()} -> "
          f"{result.path.with_suffix('.json')}")


def add_baseline_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``baseline`` to the ``worldmodels`` parser."""
    baseline = add_command(subparsers, "baseline", cmd_baseline,
                           run_help="run folder (vae.pt and mdnrnn.pt for latent and dream); outputs in RUN/baselines")
    baseline.add_argument("--algo", help="a stable_baselines3 algorithm, any case (sets baseline.algo; default PPO)")
    baseline.add_argument("--obs", choices=get_args(BaselineObsName),
                          help="what the agent learns on (sets baseline.obs; default latent)")
    baseline.add_argument("--timesteps", type=positive_int, help="training steps (sets baseline.timesteps)")
    baseline.add_argument("--episodes", type=positive_int, help="real-env evaluation episodes, each on its own seed "
                          "(default: evaluate.episodes, 100 as published)")
    baseline.add_argument("--data", type=Path, help="encoded episodes whose first frames start the dreams "
                          f"(default: RUN/{EPISODES_DIR})")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-controller``, ``evaluate``, ``run``, ``temperature-sweep`` and ``calibrate`` to the
    ``worldmodels`` parser."""
    train = add_command(subparsers, "train-controller", cmd_train_controller, run_help=MODELS_RUN_HELP)
    train.add_argument("--env", choices=get_args(ControllerEnvName), help="where candidates are evaluated: the real "
                       "environment, M's batched dream, or the dream for cmaes.dream_generations generations then the "
                       "real env (sets controller.train_in)")
    train.add_argument("--temperature", type=float, help="dream temperature tau (sets dream.temperature)")
    train.add_argument("--data", type=Path, help="encoded episodes whose first frames start the dreams "
                       f"(default: RUN/{EPISODES_DIR})")
    evaluate = add_command(subparsers, "evaluate", cmd_evaluate, run_help=MODELS_RUN_HELP, pretrained=True)
    evaluate.add_argument("--episodes", type=positive_int, help="episodes, each on its own seed "
                          "(default: evaluate.episodes, 100 as published)")
    evaluate.add_argument("--params", type=Path, help="controller parameters .npy (default: RUN/controller/mean.npy)")
    evaluate.add_argument("--out", type=Path, help="JSON report (default: RUN/evaluation.json)")
    evaluate.add_argument("--gif", type=Path, help="also record the first episode as this GIF")
    evaluate.add_argument("--gif-worst", type=non_negative_int, default=0, metavar="N", help="also record the N "
                          f"lowest-return episodes as GIFs in {WORST_EPISODES_DIR}/ beside the report, to watch where "
                          "the controller fails (default 0)")
    run = add_command(subparsers, "run", cmd_run, run_help="the run folder: every stage's outputs")
    run.add_argument("--iterations", type=positive_int, help="rounds of the paper's iterative procedure: gather episodes with "
                     "the current controller, train M further, evolve C further (sets iterate.iterations; default 1)")
    sweep = add_command(subparsers, "temperature-sweep", cmd_temperature_sweep, run_help=MODELS_RUN_HELP)
    sweep.add_argument("--temperatures", type=float, nargs="+", default=list(PUBLISHED_TEMPERATURES),
                       help="values of tau (default: the paper's 0.1 0.5 1.0 1.15 1.3)")
    sweep.add_argument("--data", type=Path, help=f"encoded episodes starting the dreams (default: RUN/{EPISODES_DIR})")
    calibration = add_command(subparsers, "calibrate", cmd_calibrate, run_help=MODELS_RUN_HELP)
    calibration.add_argument("--episodes", type=positive_int, default=32, help="episodes per controller, in the dream and "
                             "in the real env, on seeds trust.seed and up (default 32)")
    calibration.add_argument("--scales", type=float, nargs="+", default=list(CALIBRATION_SCALES),
                             help="std of the random controllers' weights (default: 0.1 1.0)")
    calibration.add_argument("--random", type=non_negative_int, default=2, help="random controllers per scale (default 2)")
    calibration.add_argument("--params", type=Path, nargs="+", help="controller .npy files to score "
                             "(default: RUN/controller/mean.npy and best.npy where they exist)")
    calibration.add_argument("--probe-generations", type=non_negative_int, help="also score the mean of a CMA-ES "
                             "search run this many generations in the dream, from the search's start "
                             "(cmaes.init_params, else zeros): does a search climb M's errors? (sets "
                             "trust.probe_generations, default 10; 0: no probe)")
    calibration.add_argument("--data", type=Path, help="encoded episodes starting the dreams (default: "
                             f"RUN/{EPISODES_DIR}; for a round folder ROOT/iterations/k pass ROOT/{EPISODES_DIR})")
    compare = add_command(subparsers, "compare-runs", cmd_compare_runs, configured=False)
    compare.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders, each with a trained "
                         "and evaluated controller")
    compare.add_argument("--labels", nargs="+", help="a name per run for the table and the plot (default: the folder "
                         "names)")
    compare.add_argument("--out", type=Path, required=True, help="folder for comparison.md and the PNG")
    paired = add_command(subparsers, "compare-evaluations", cmd_compare_evaluations, configured=False)
    paired.add_argument("reports", type=Path, nargs=2, metavar="REPORT", help="two evaluation.json files scored on the "
                        "same seeds (first, then second: the difference is first - second)")
    for parser in (train, evaluate, run, sweep, calibration):
        add_ray_address_option(parser)
    add_baseline_command(subparsers)
