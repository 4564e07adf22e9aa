"""The `sweeps` command line: parse, call the library, print.

Light commands (`validate`, `plan`, `--help`) never import Ray, MLflow or pandas; the
heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn, Optional

import typer

from sweeps.records import Executor
from sweeps.vocabulary import RANKING_HELP

app = typer.Typer(
    name="sweeps",
    help="Hyperparameter sweeps of NumPy backprop networks on Ray, tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

BAD_INPUT = 2

FileArg = typer.Argument(..., help="Sweep file (YAML).", show_default=False)
TrackingUriOpt = typer.Option(
    None, "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
    help="MLflow tracking URI (default: sqlite:///mlflow.db in the working directory).",
)
AddressOpt = typer.Option(
    None, "--address", envvar="RAY_ADDRESS",
    help="Ray cluster to join (default: a local Ray instance started for the run).",
)


def _fail(lines: list[str] | str, code: int = BAD_INPUT) -> None:
    """Print each problem on its own line to stderr and exit without a traceback."""
    for line in [lines] if isinstance(lines, str) else lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def _load(file: Path):
    """Load and validate a sweep file, exiting with status 2 on any problem."""
    from sweeps.spec.problems import ConfigError
    from sweeps.spec.sweep import load_sweep

    try:
        return load_sweep(file)
    except ConfigError as error:
        _fail(error.problems)


@app.command()
def validate(file: Path = FileArg) -> None:
    """Check a sweep file: prints ok or one line per problem (exit 2)."""
    sweep = _load(file)
    typer.echo(f"ok: {file} ({len(sweep.variants)} variants)")


@app.command()
def plan(
    file: Path = FileArg,
    workers: int = typer.Option(2, min=1, help="Ray workers the packs are split for."),
) -> None:
    """Show the variants, how they are packed into Ray tasks, and the work estimate."""
    from sweeps.execution.plan import describe, make_packs

    sweep = _load(file)
    typer.echo(describe(sweep, make_packs(sweep, workers=workers), workers=workers))


@app.command()
def run(
    file: Path = FileArg,
    tracking_uri: Optional[str] = TrackingUriOpt,
    address: Optional[str] = AddressOpt,
    executor: Executor = typer.Option("ray", help="ray: Ray tasks; serial: the same packs in-process."),
    out: Optional[Path] = typer.Option(
        None, help="Results directory (default: sweep-results/<name>/)."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Start a new parent run instead of resuming."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    reuse: bool = typer.Option(
        True, "--reuse/--no-reuse",
        help="Copy variants already FINISHED in the experiment (same key, same numerics) "
             "instead of training them."),
) -> None:
    """Train every variant (Ray tasks) and log it all to MLflow; resumes an unfinished sweep."""
    sweep = _load(file)
    from sweeps.run import SweepInterrupted, run_sweep

    try:
        outcome = run_sweep(
            sweep, tracking_uri=tracking_uri, address=address, executor=executor,
            out=out, fresh=fresh, progress=progress, reuse=reuse,
        )
    except SweepInterrupted as stop:
        typer.echo(f"\n{stop}", err=True)
        raise typer.Exit(stop.exit_code)
    except ConnectionError as error:  # no Ray cluster or tracking server at the given address
        _fail(f"sweeps run: {error}", code=1)
    typer.echo(outcome.report())
    if outcome.failed:
        raise typer.Exit(1)


@app.command()
def summary(
    file: Optional[Path] = typer.Argument(None, help="Sweep file whose experiment to summarize."),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment name (instead of FILE)."),
    tracking_uri: Optional[str] = TrackingUriOpt,
    over: str = typer.Option("seed", help="Setting aggregated over."),
    metric: Optional[str] = typer.Option(
        None, help=RANKING_HELP),
    top: int = typer.Option(10, min=1, help="Rows to show."),
    csv: Optional[Path] = typer.Option(None, help="Also write the whole summary as CSV."),
    importance: bool = typer.Option(
        False, "--importance", help="Also which settings explain the ranking metric."),
    evaluator: str = typer.Option(
        "mdi", help="Importance evaluator: mdi (random forest), fanova or ped_anova."),
) -> None:
    """Summarize a sweep from MLflow: one row per group with seeds aggregated, best first."""
    if (file is None) == (experiment is None):
        _fail("give either a sweep FILE or --experiment NAME")
    sweep = None if file is None else _load(file)
    from sweeps.report import results, ties

    try:
        frame = results.load_runs(experiment, tracking_uri=tracking_uri, sweep=sweep)
        table = ties.mark_ties(frame, results.summarize(frame, over=over, metric=metric), over)
    except (LookupError, ValueError) as error:
        _fail(str(error))
    if csv is not None:
        results.save_summary_csv(table, csv)
    typer.echo(results.format_summary(table, top=top))
    from sweeps.report.outputs import search_objectives
    front = search_objectives(sweep)
    if front:
        from sweeps.report.pareto import format_front
        try:
            typer.echo("\n" + format_front(table, front))
        except ValueError as error:
            _fail(str(error))
    if importance:
        from sweeps.report.importance import format_importances, importances
        try:
            shares = importances(table, evaluator=evaluator)
        except ValueError as error:
            _fail(str(error))
        typer.echo("\n" + format_importances(shares, table.attrs["metric"], evaluator))


def _source(target: str) -> tuple[Optional[str], object]:
    """(experiment, sweep): a sweep FILE (validated) or an MLflow experiment name."""
    path = Path(target)
    if path.is_file() or path.suffix in (".yaml", ".yml"):
        return None, _load(path)
    return target, None


TargetArg = typer.Argument(..., metavar="FILE_OR_EXPERIMENT",
                           help="Sweep file (YAML) or MLflow experiment name.", show_default=False)


@app.command()
def best(
    target: str = TargetArg,
    tracking_uri: Optional[str] = TrackingUriOpt,
    metric: Optional[str] = typer.Option(
        None, help=RANKING_HELP),
    register: Optional[str] = typer.Option(
        None, "--register", help="Also register the model under this name in the registry."),
    variant: Optional[str] = typer.Option(
        None, "--variant", help="Log this variant (key, run id or run name) instead of the best."),
) -> None:
    """Log the best variant as an MLflow pyfunc model (re-trained from its logged params)."""
    experiment, sweep = _source(target)
    from sweeps.best import NoWinner, best_model

    try:
        outcome = best_model(experiment, tracking_uri, sweep, metric=metric, register=register,
                             variant=variant)
    except (LookupError, ValueError) as error:   # NoWinner, no experiment, unknown metric
        _fail(f"sweeps best: {error}")
    except RuntimeError as error:                # the re-trained network does not reproduce
        _fail(f"sweeps best: {error}", code=1)
    typer.echo(outcome.report())


@app.command()
def verify(
    target: str = TargetArg,
    tracking_uri: Optional[str] = TrackingUriOpt,
    sample: int = typer.Option(20, "--sample", min=1,
                               help="Variants to re-train, drawn at random."),
    all_: bool = typer.Option(False, "--all", help="Re-train every finished variant."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the sample."),
) -> None:
    """Re-train finished variants from their logged params alone and compare with MLflow."""
    experiment, sweep = _source(target)
    from sweeps.verification import verify as run_verify

    try:
        outcome = run_verify(experiment, tracking_uri, sweep, sample=None if all_ else sample,
                             seed=seed)
    except (LookupError, ValueError) as error:
        _fail(f"sweeps verify: {error}")
    typer.echo(outcome.report())
    if not outcome.ok:
        raise typer.Exit(1)


@app.command()
def ui(
    file: Optional[Path] = typer.Argument(
        None, help="Sweep file whose experiment to open (default: the most recent sweep's)."),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment name (instead of FILE)."),
    tracking_uri: Optional[str] = TrackingUriOpt,
    port: int = typer.Option(5000, help="Port on 127.0.0.1."),
) -> None:
    """Start the MLflow UI on loopback and print the address of the sweep's configurations
    (best first by the metric the sweep ranked on: its search.metric, else the default)."""
    if file is not None and experiment is not None:
        _fail("give either a sweep FILE or --experiment NAME, not both")
    name = _load(file).name if file is not None else experiment
    from sweeps.tracking.ui import serve

    try:
        serve(tracking_uri, port=port, experiment=name)
    except LookupError as error:  # no store, no such experiment, no sweep yet
        _fail(f"sweeps ui: {error.args[0]}")
    except (OSError, RuntimeError) as error:  # the port is taken, the server would not start
        _fail(f"sweeps ui: {error}", code=1)


@app.command()
def submit(
    file: Path = FileArg,
    address: str = typer.Option(..., help="Ray job server, e.g. http://127.0.0.1:8265."),
    tracking_uri: Optional[str] = TrackingUriOpt,
    follow: bool = typer.Option(False, "--follow", help="Stream the job's logs until it ends."),
    reuse: bool = typer.Option(
        True, "--reuse/--no-reuse",
        help="The job copies variants already FINISHED in the experiment instead of training "
             "them (as `sweeps run`)."),
) -> None:
    """Submit a sweep to a Ray cluster as a Ray Job; prints the job id."""
    _load(file)
    from sweeps.execution.submit import (UNSUCCESSFUL, SubmitError, status as job_status,
                                         submit as submit_job)

    try:
        job_id = submit_job(file, address, tracking_uri=tracking_uri, follow=follow,
                            reuse=reuse)
        final = job_status(job_id, address) if follow else None
    except SubmitError as error:
        _fail(str(error))
    typer.echo(job_id)
    if final in UNSUCCESSFUL:   # followed to its end, and it did not succeed
        _fail(f"{job_id}: {final}", code=1)


JobArg = typer.Argument(..., help="Job id printed by `sweeps submit`.", show_default=False)
JobServerOpt = typer.Option(..., help="Ray job server, e.g. http://127.0.0.1:8265.")


def _job_answer(action: str, job: str, address: str) -> None:
    """Print what `sweeps.execution.submit.<action>(job, address)` answers, or fail on one line."""
    from sweeps.execution import submit

    try:
        typer.echo(getattr(submit, action)(job, address))
    except submit.SubmitError as error:
        _fail(str(error))


@app.command()
def status(job: str = JobArg, address: str = JobServerOpt) -> None:
    """Show a submitted sweep's status."""
    _job_answer("status", job, address)


@app.command()
def stop(job: str = JobArg, address: str = JobServerOpt) -> None:
    """Stop a submitted sweep."""
    _job_answer("stop", job, address)


def main() -> NoReturn:  # pragma: no cover - console entry point
    """`app`, then the process ends without tearing the interpreter down.

    With MLflow, SQLAlchemy and Ray loaded, the teardown (freeing some 2,000 modules) takes
    about a second after the command is done, and buys nothing: runs are committed and files
    closed by then. Exit handlers still run; a thread still at work gets the normal exit.
    """
    try:
        app()
        code: int | str | None = 0
    except SystemExit as done:
        code = done.code
    if any(thread.is_alive() and not thread.daemon for thread in threading.enumerate()
           if thread is not threading.main_thread()):
        sys.exit(code)
    if isinstance(code, str):          # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):      # a closed pipe (`sweeps summary | head`)
        pass
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    main()
