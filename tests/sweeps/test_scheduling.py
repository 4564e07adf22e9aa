"""The scheduler seam (`sweeps.methods.base`) and its driver (`sweeps.scheduling`): a method asks
for rounds of work and is told their results; the driver trains, keeps states, logs.

The toy method below is the whole of what a new method needs besides its settings: it starts a
variant, then forks a second one from the first's state with another learning rate (what
population-based training does), and the forked run continues the first's bits exactly.
"""
from __future__ import annotations

import textwrap

import core
from sweeps.methods.base import Continue, Fork, Round, Scheduler, Start, Stop
from sweeps.methods.static import StaticScheduler
from sweeps.run import _pack_runner
from sweeps.scheduling import run_scheduled
from sweeps.spec.search import scheduler_of
from sweeps.spec.sweep import load_sweep
from sweeps.tracking import open_tracker

SWEEP = textwrap.dedent("""\
    name: toy-fork
    data: {source: article}
    model: {hidden: [4], activation: sigmoid, output_activation: sigmoid, bias: false,
            init: uniform01}
    train: {loss: half_sse, optimizer: sgd, lr: 0.1, epochs: 20, log_every: 5}
    seed: 42
""")


class ForkAtTen(Scheduler):
    """Train the sweep's variant to epoch 10; then go on with it and fork a copy at lr 0.5."""

    def __init__(self, sweep):
        self.parent = sweep.variants[0]
        self.child = sweep.variant_at({"train.lr": 0.5}, index=1)
        self.rounds = [Round(work=(Start(self.parent),), stops=(10,), keep=True),
                       Round(work=(Continue(self.parent.key), Fork(self.child, self.parent.key)),
                             stops=(20,), last=True, keep=True)]
        self.told: list[dict] = []

    def ask(self):
        return self.rounds.pop(0) if self.rounds else None

    def tell(self, results):
        self.told.append({key: result.epoch for key, result in results.items()})


def _sweep(tmp_path, text=SWEEP):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return load_sweep(path)


def _run(tmp_path, sweep, scheduler):
    tracker = open_tracker(f"sqlite:///{tmp_path}/mlflow.db", sweep)
    tracker.start()
    outcome = run_scheduled(sweep, tracker, scheduler, _pack_runner(sweep, None), workers=1,
                            progress=False)
    return tracker, outcome


def test_a_toy_method_forks_a_variant_from_another_state(tmp_path):
    sweep = _sweep(tmp_path)
    toy = ForkAtTen(sweep)
    tracker, outcome = _run(tmp_path, sweep, toy)
    assert not outcome.failed
    assert toy.told == [{toy.parent.key: 10}, {toy.parent.key: 20, toy.child.key: 20}]
    records = {r.variant_key: r for r in tracker.records()}
    assert set(records) == {toy.parent.key, toy.child.key}

    # the same by hand in core: 10 epochs at lr 0.1, then on from that state at lr 0.5
    data = sweep.datasets[toy.parent.data_key]
    mlp = core.MLP(3, (4,), 1, activation="sigmoid", output_activation="sigmoid", bias=False)
    params = core.init_params(mlp, "uniform01", [42])
    first = core.train(mlp, params, data.X_train, data.Y_train, loss="half_sse", epochs=10,
                       log_every=5, optimizer=core.OptimizerSpec("sgd", lr=0.1))
    forked = core.train(mlp, first.state, data.X_train, data.Y_train, loss="half_sse",
                        epochs=20, log_every=5, optimizer=core.OptimizerSpec("sgd", lr=0.5))
    straight = core.train(mlp, params, data.X_train, data.Y_train, loss="half_sse", epochs=20,
                          log_every=5, optimizer=core.OptimizerSpec("sgd", lr=0.1))
    assert records[toy.child.key].metrics["train_loss"] == float(forked.final_loss[0])
    assert records[toy.parent.key].metrics["train_loss"] == float(straight.final_loss[0])
    assert float(forked.final_loss[0]) != float(straight.final_loss[0])


def test_a_stopped_variant_is_logged_with_the_status_its_scheduler_gives(tmp_path):
    sweep = _sweep(tmp_path)

    class StopAtFive(Scheduler):
        def __init__(self):
            self.rounds = [Round(work=(Start(sweep.variants[0]),), stops=(5,), keep=True),
                           Round(work=(), stop={sweep.variants[0].key: Stop("pruned", 0)})]

        def ask(self):
            return self.rounds.pop(0) if self.rounds else None

        def tell(self, results):
            pass

    tracker, _ = _run(tmp_path, sweep, StopAtFive())
    (record,) = tracker.records()
    assert (record.status, record.rung) == ("pruned", 0)
    data = sweep.datasets[sweep.variants[0].data_key]
    mlp = core.MLP(3, (4,), 1, activation="sigmoid", output_activation="sigmoid", bias=False)
    five = core.train(mlp, core.init_params(mlp, "uniform01", [42]), data.X_train,
                      data.Y_train, loss="half_sse", epochs=5, log_every=5,
                      optimizer=core.OptimizerSpec("sgd", lr=0.1))
    assert record.metrics["train_loss"] == float(five.final_loss[0])


def test_a_scheduler_that_reads_no_results_is_told_none_and_its_round_is_logged(tmp_path):
    # (the driver then holds no round of results: 48,000 of them were ~70 MB for nothing)
    sweep = _sweep(tmp_path, SWEEP + "search:\n  parameters:\n    train.lr: [0.1, 0.2, 0.3]\n")

    class Blind(Scheduler):
        reads_results = False

        def __init__(self):
            self.rounds = [Round(work=tuple(Start(v) for v in sweep.variants), last=True)]
            self.told: list[dict] = []

        def ask(self):
            return self.rounds.pop(0) if self.rounds else None

        def tell(self, results):
            self.told.append(dict(results))

    blind = Blind()
    tracker, outcome = _run(tmp_path, sweep, blind)
    assert not outcome.failed and blind.told == [{}]
    assert sorted(r.variant_key for r in tracker.records()) == sorted(
        v.key for v in sweep.variants)


def test_grid_and_random_are_one_round_of_the_variants_not_finished(tmp_path):
    sweep = _sweep(tmp_path, SWEEP + "search:\n  parameters:\n    train.lr: [0.1, 0.2, 0.3]\n")
    first = sweep.variants[0].key
    scheduler = scheduler_of(sweep, {first: {}})
    assert isinstance(scheduler, StaticScheduler)
    work = scheduler.ask()
    assert [r.variant for r in work.work] == list(sweep.variants[1:])
    assert work.last and not work.keep and work.stops == ()
    assert scheduler.ask() is None
    assert scheduler_of(sweep, {v.key: {} for v in sweep.variants}).ask() is None


def test_halving_asks_starts_then_continues_and_stops_what_its_brackets_drop(tmp_path):
    sweep = _sweep(tmp_path, SWEEP.replace("data: {source: article}",
                                           "data: {source: sine, validation: 0.25, target_scale: minmax}")
                   + "search:\n  method: halving\n  min_epochs: 5\n  eta: 2\n  brackets: 1\n"
                     "  ranking: value\n  parameters:\n    train.lr: [0.1, 0.2, 0.3, 0.4]\n")
    scheduler = scheduler_of(sweep, {})
    first = scheduler.ask()
    assert {type(r) for r in first.work} == {Start} and first.stops == (5,) and first.keep
    # lr 0.1 best, then 0.2, ...: the brackets keep the best half
    scheduler.tell({r.variant.key: _at(5, 0.1 * i) for i, r in enumerate(first.work)})
    second = scheduler.ask()
    kept = [v.key for v in sweep.variants[:2]]
    assert [r.key for r in second.work] == kept and {type(r) for r in second.work} == {Continue}
    assert second.stop == {v.key: Stop("pruned", 0) for v in sweep.variants[2:]}
    assert second.stops == (10,)


def _at(epoch, value):
    class Result:
        at_stops = {epoch: {"val_loss": value}}
    return Result()
