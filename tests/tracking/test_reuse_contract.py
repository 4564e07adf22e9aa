"""A reused child reads back as the child it was copied from, through every read path, on
SQLite and PostgreSQL, copied inside the database (bulk writer) and through a tracking server
(client copy): only run ids, timestamps and the tag ``sweep.reused_from`` differ.

The batch is the contract test's (ok, diverged, +-inf metrics, a truncated param), written
once, then copied under a second parent with `sweeps.tracking.reuse`.
"""

from __future__ import annotations

import dataclasses

import pytest
from mlflow import MlflowClient

from sweeps.execution.machine import numerics_fingerprint
from sweeps.tracking import open_tracker
from sweeps.tracking.contract import NUMERICS, REUSED_FROM
from sweeps.tracking.reuse import copy_sources, find_sources
from sweeps.tracking.run_records import by_index
from tests.synthetic import load_small_sweep
from tests.tracking.test_contract import (Side, artifact_files, assert_same, contract_batch,
                                          raw_rows)
from tests.tracking.test_readers import assert_same_records

pytestmark = pytest.mark.integration


def written_then_copied(sweep, uri: str):
    """(trained tracker, copying tracker, batch): the batch logged, then reused under a new
    parent; the copies checked to come from the right sources."""
    batch = [(variant, dataclasses.replace(result, numerics=numerics_fingerprint()))
             for variant, result in contract_batch(sweep)[:4]]     # (not the halving one)
    trained = open_tracker(uri, sweep)
    trained.start()
    trained.log_variants(batch)
    trained.finish()
    copying = open_tracker(uri, sweep, fresh=True)
    assert copying.start() == set()
    sources = find_sources(copying, [v.key for v, _ in batch], numerics_fingerprint())
    assert {key: s.run_id for key, s in sources.items()} == \
        {r.variant_key: r.run_id for r in trained.records()}
    done = []
    copy_sources(copying, [(v, sources[v.key]) for v, _ in batch], on_batch=done.append)
    copying.finish()
    assert sum(done) == len(batch)
    return trained, copying, batch


def without_reuse_tag(side: Side, read):
    """read(side) with each run's ``sweep.reused_from`` tag checked (it names the source of
    the same variant) and removed."""
    def read_stripped(s: Side):
        found = read(s)
        if s is side:
            return found
        for key, run in found.items():
            tags = run["data"]["tags"]
            assert tags.pop(REUSED_FROM) == side.runs[key.split("/")[0]]
        return found
    return read_stripped


@pytest.mark.parametrize("path", ["database", "server"])
def test_a_reused_child_reads_back_as_the_child_it_copies(store_uri, serve, tmp_path, path):
    sweep = load_small_sweep(tmp_path, name="reuse", epochs=1000, log_every=100)
    uri = store_uri if path == "database" else serve(store_uri)
    trained, copying, batch = written_then_copied(sweep, uri)
    if path == "database":
        assert copying.bulk, "a database store must be copied inside the database"
        # The copies' records are made from their sources', not read back: the same.
        read_back = copying.keep_finished_children()
        held = by_index(copying.records())
        assert_same_records(held, by_index(read_back))
        assert [(r.rung, r.stopped_epoch) for r in held] == \
            [(r.rung, r.stopped_epoch) for r in by_index(read_back)]
    client = MlflowClient(uri)
    a, b = Side(client, trained), Side(client, copying)
    keys = [variant.key for variant, _ in batch]
    assert set(a.runs) == set(b.runs) == set(keys) and a.parent != b.parent

    assert_same(a, b, without_reuse_tag(a, lambda s: {
        k: client.get_run(s.runs[k]).to_dictionary() for k in keys}))
    for key in keys:
        assert client.get_run(b.runs[key]).data.tags[NUMERICS] == numerics_fingerprint()

    def histories(s: Side) -> dict:
        return {f"{key}/{metric}": [m.to_dictionary() for m in
                                    client.get_metric_history(s.runs[key], metric)]
                for key in keys for metric in client.get_run(s.runs[key]).data.metrics}

    assert_same(a, b, histories)

    assert_same(a, b, lambda s: artifact_files(client, s, keys, tmp_path / "dl"))

    def search(s: Side) -> list:
        runs = client.search_runs([s.experiment_id], s.children_filter(),
                                  order_by=["metrics.test_loss DESC", "attributes.run_name ASC"])
        out = [run.to_dictionary() for run in runs]
        for run in out:
            run["data"]["tags"].pop(REUSED_FROM, None)
        return out

    assert_same(a, b, search)
    if path == "database":
        def rows(s: Side) -> dict:
            found = raw_rows(client, s)
            found["tags"] = [row for row in found["tags"] if row["key"] != REUSED_FROM]
            return found

        assert_same(a, b, rows)


def test_only_grid_children_of_these_numerics_are_found(tracking_uri, tmp_path):
    """A child of other numerics (another core, NumPy, BLAS kernel), without the tag (logged
    before it existed) or of successive halving (pruned at a rung) is no source; a newer
    FINISHED child of a variant wins."""
    sweep = load_small_sweep(tmp_path, name="numerics", epochs=1000, log_every=100)
    batch = [(variant, dataclasses.replace(result, numerics=numerics_fingerprint()))
             for variant, result in contract_batch(sweep)]
    first = open_tracker(tracking_uri, sweep)
    first.start()
    first.log_variants(batch)
    first.finish()
    client = MlflowClient(tracking_uri)
    runs = {r.variant_key: r.run_id for r in first.records()}
    other, untagged, kept, _, pruned = (variant.key for variant, _ in batch)
    client.set_tag(runs[other], NUMERICS, "core=0 " + numerics_fingerprint())
    client.delete_tag(runs[untagged], NUMERICS)

    second = open_tracker(tracking_uri, sweep, fresh=True)
    second.start()
    assert set(find_sources(second, [other, untagged, kept, pruned],
                            numerics_fingerprint())) == {kept}
    copy_sources(second, [(batch[2][0], find_sources(second, [kept],
                                                     numerics_fingerprint())[kept])])
    second.finish()
    [copy] = second.records()
    # The copy is the newest FINISHED child of that variant now: a third sweep copies it.
    third = open_tracker(tracking_uri, sweep, fresh=True)
    third.start()
    assert find_sources(third, [kept], numerics_fingerprint())[kept].run_id == copy.run_id
    third.finish()


def test_a_copy_whose_commit_answer_is_lost_is_not_copied_twice(store_uri, tmp_path,
                                                               monkeypatch):
    """The in-database copy commits, then its answer is lost: the retry adopts the copies
    the commit wrote (`adopt_written`) instead of copying again."""
    from sweeps.tracking import reuse

    sweep = load_small_sweep(tmp_path, name="lost", epochs=1000, log_every=100)
    batch = [(variant, dataclasses.replace(result, numerics=numerics_fingerprint()))
             for variant, result in contract_batch(sweep)[:4]]
    trained = open_tracker(store_uri, sweep)
    trained.start()
    trained.log_variants(batch)
    trained.finish()
    copying = open_tracker(store_uri, sweep, fresh=True)
    copying._sleep = lambda seconds: None
    copying.start()
    assert copying.bulk
    copy_in_database, calls = reuse._copy_in_database, []

    def commit_then_lose_the_answer(*args, **kwargs):
        calls.append(True)
        copy_in_database(*args, **kwargs)
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(reuse, "_copy_in_database", commit_then_lose_the_answer)
    sources = find_sources(copying, [v.key for v, _ in batch], numerics_fingerprint())
    copy_sources(copying, [(v, sources[v.key]) for v, _ in batch])
    copying.finish()
    assert calls == [True]                         # the retry found all four copied
    children = MlflowClient(store_uri).search_runs(
        [copying.experiment_id], f"tags.`mlflow.parentRunId` = '{copying.parent_run_id}'")
    held = by_index(copying.records())
    assert sorted(run.info.run_id for run in children) == sorted(r.run_id for r in held)
    assert [r.variant_key for r in held] == [v.key for v, _ in batch]
    assert {run.data.tags[REUSED_FROM] for run in children} == \
        {r.run_id for r in trained.records()}
