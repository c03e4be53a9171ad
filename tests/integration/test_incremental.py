"""Incremental resolution equals a full run.

A generated world is staged, its identity records are split into a base and a delivery of
changed records (new payroll lines, new and re-versioned contracts — 10% of the partner
records, drawn at random), and the person index resolves the base, then the delivery. The
persons — their records, links, doubts and confidence — must be exactly those a single run
over everything gives, and the delivery must have been resolved without touching most of
the index. Then deliveries that change records already indexed (a record taking another
worker's identity, losing its identifiers, moving employer, a name re-typed; the same
record delivered again) must keep it so, round after round.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.config import load_settings
from reconciler.identity.index import PersonIndex
from reconciler.identity.resolve import IdentityResolver, Resolution
from reconciler.pipeline import PARTNER_COLUMNS, Reconciler, _identity_records, _partner_frame
from reconciler.synth.world import WorldSpec, generate_world, write_world


@pytest.fixture
def records(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    inbox = tmp_path / "inbox"
    write_world(generate_world(WorldSpec(workers=2000, seed=3, as_of=date(2026, 11, 1))),
                inbox, tmp_path / "truth")
    monkeypatch.setenv("RECONCILER_DATABASE_URL", database_url)
    monkeypatch.setenv("RECONCILER_INBOX", str(inbox))
    monkeypatch.setenv("RECONCILER_AS_OF", "2026-11-01")
    for args in (["db", "upgrade"], ["run", "--once"]):
        assert CliRunner().invoke(main, args).exit_code == 0
    app = Reconciler.from_settings(load_settings())
    with app.engine.connect() as conn:
        partner = {f: _partner_frame(conn, f, c) for f, c in PARTNER_COLUMNS.items()}
        frame = _identity_records(partner, app.registry.contributors(conn),
                                  app.registry.engagements(conn))
    app.engine.dispose()
    return frame


IDENTITY = ["national_id", "residence_id", "border_number", "passport_number", "invalid_ids",
            "nationality", "name_en", "name_ar", "date_of_birth", "sex"]


def persons(resolution: Resolution) -> dict[frozenset[str], tuple[object, ...]]:
    """Each person by its records: confidence, links and doubts with their weights."""
    out: dict[frozenset[str], tuple[object, ...]] = {}
    for pid in resolution.persons:
        person = resolution.persons[pid]
        out[frozenset(person.refs)] = (
            round(person.confidence, 12),
            sorted((k.ref_a, k.ref_b, round(k.probability, 12), tuple(k.weights.items()))
                   for k in person.links),
            sorted((k.ref_a, k.ref_b, round(k.probability, 12), tuple(k.weights.items()))
                   for k in person.doubts))
    return out


def test_a_delivery_resolved_against_the_index_equals_a_full_run(records: pd.DataFrame) -> None:
    rng = np.random.default_rng(11)
    partner = records.index[records["feed"] != "contributors"].to_numpy()
    delivered = rng.choice(partner, size=len(partner) // 10, replace=False)
    base = records.drop(index=delivered)
    delta = records.loc[delivered]

    full = PersonIndex(IdentityResolver())
    full.apply(records)

    incremental = PersonIndex(IdentityResolver())
    incremental.apply(base)
    resolution = incremental.apply(delta)

    assert incremental.partition() == full.partition()
    assert persons(incremental.resolution({})) == persons(IdentityResolver().resolve(records))
    # the delivery touched only part of the index
    assert resolution.stats["records"] < len(records)


def changed_records(records: pd.DataFrame, rng: np.random.Generator, size: int) -> pd.DataFrame:
    """New versions of ``size`` records: another record's identity, no identifiers, another
    employer, or the name in capitals."""
    changed = records.iloc[rng.choice(len(records), size=size, replace=False)].copy()
    for at in changed.index:
        other = records.iloc[int(rng.integers(len(records)))]
        how = int(rng.integers(4))
        if how == 0:
            changed.loc[at, IDENTITY] = other[IDENTITY].to_numpy()
        elif how == 1:
            changed.loc[at, ["national_id", "residence_id", "border_number"]] = None
        elif how == 2:
            changed.loc[at, "employer_id"] = other["employer_id"]
        elif isinstance(changed.loc[at, "name_en"], str):
            changed.loc[at, "name_en"] = str(changed.loc[at, "name_en"]).upper()
    return changed


def test_deliveries_that_change_indexed_records_keep_the_index_equal_to_a_full_run(
        records: pd.DataFrame) -> None:
    rng = np.random.default_rng(5)
    index = PersonIndex(IdentityResolver())
    index.apply(records)
    current = records.set_index("ref", drop=False)
    for _ in range(3):
        delta = pd.concat([changed_records(records, rng, 150),
                           records.iloc[rng.choice(len(records), size=20, replace=False)]])
        delta = delta.drop_duplicates("ref", keep="first")
        before = index.resolution({}).person_of
        resolution = index.apply(delta)
        current.loc[delta["ref"].to_numpy()] = delta.set_index("ref", drop=False)
        full = IdentityResolver().resolve(current.reset_index(drop=True), before)
        assert persons(index.resolution({})) == persons(full)
        assert index.resolution({}).person_of == full.person_of  # and the same ids
        assert resolution.stats["records"] < len(records) // 5
    # what the index reports unchanged is unchanged, and only that
    assert len(index.changed(current.reset_index(drop=True))) == 0
    assert len(index.changed(delta.assign(sex="X"))) == len(delta)


def test_a_changed_record_moves_to_the_right_person(records: pd.DataFrame) -> None:
    index = PersonIndex(IdentityResolver())
    index.apply(records)
    contract = records[records["feed"] == "contracts"].iloc[0]
    other = records[(records["feed"] == "contracts")
                    & (records["residence_id"] != contract["residence_id"])
                    & records["residence_id"].notna()].iloc[0]
    # a new version of the contract now names the other worker
    moved = contract.copy()
    for col in ("national_id", "residence_id", "border_number", "passport_number",
                "invalid_ids", "nationality", "name_en", "name_ar", "date_of_birth", "sex"):
        moved[col] = other[col]
    index.apply(pd.DataFrame([moved]))
    assert index.person_of[contract["ref"]] == index.person_of[other["ref"]]
    fresh = PersonIndex(IdentityResolver())
    fresh.apply(pd.concat([records[records["ref"] != contract["ref"]], pd.DataFrame([moved])]))
    assert index.partition() == fresh.partition()


def test_the_daemons_incremental_reconcile_leaves_nothing_for_a_full_run_to_change(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The daemon reconciles incrementally: once on the registry and September's deliveries,
    # then after October's payroll and contracts arrive. A full reconcile right after must
    # find every finding already in the state it would put it in.
    inbox, held = tmp_path / "inbox", tmp_path / "held"
    write_world(generate_world(WorldSpec(workers=1500, seed=9, as_of=date(2026, 11, 1))),
                inbox, tmp_path / "truth")
    held.mkdir()
    late = [*inbox.glob("payroll/payroll-2026-10.csv"), *inbox.glob("contracts/*-11.csv")]
    for path in late:
        path.rename(held / path.name)
    monkeypatch.setenv("RECONCILER_DATABASE_URL", database_url)
    monkeypatch.setenv("RECONCILER_INBOX", str(inbox))
    monkeypatch.setenv("RECONCILER_AS_OF", "2026-11-01")
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    daemon = Reconciler.from_settings(load_settings())
    daemon.pull()
    daemon.reconcile(date(2026, 11, 1), incremental=True)
    for path in late:
        (held / path.name).rename(inbox / path.parent.name / path.name)
    daemon.pull()
    report = daemon.reconcile(date(2026, 11, 1), incremental=True)
    assert 0 < report.identity["re_resolved"] < report.identity["records"]

    full = Reconciler.from_settings(load_settings()).reconcile(date(2026, 11, 1))
    assert {k: full.findings[k] for k in ("opened", "updated", "reopened", "resolved")} == {
        "opened": 0, "updated": 0, "reopened": 0, "resolved": 0}
    daemon.engine.dispose()
