"""A synthetic world: persons, employers, partner feeds, the registry, and the ground truth.

The generator follows ``shared/contracts/feeds.md`` (contract v1) to the letter: it writes an
inbox a reconciler can ingest and, beside it, the findings a perfect reconciler would report.

How it works, and why:

* Everything is **column-wise** (numpy arrays indexed by person), because the world must reach
  a million workers in about a minute. Persons get a *job slot* (employer, start, contract,
  permit, payroll), an optional *prior* job and an optional *future* contract, and a
  *registry* state (contributor records, engagements). Feeds are rendered from those arrays.
* **Signs are planted, not detected.** Each planted scenario takes a disjoint set of persons,
  edits their slots so that exactly the intended rule fires (precedence included), and
  appends the expected finding to the truth. Every other person is built so that no rule
  fires — registration within the grace period, declared wage equal to the evidence wage,
  etc. The unit tests re-derive the findings from the written files with an independent
  reading of the contract and compare.
* **Noise never changes the truth**: transliterations, missing / mistyped identifiers, border
  numbers, renewed passports, Hijri and year-only birth dates, re-deliveries, newer versions,
  malformed (quarantined) rows and look-alikes are all chosen so that a correct reconciler,
  resolving identities as the contract describes, reaches the same findings. Where a noise
  would remove the last link between a row and its person it is not applied.
* Same seed → same bytes: one ``numpy`` generator for the world, a second one (derived from
  the seed) for file layout, no dependence on hash order or wall-clock time.

Files. The inbox holds ``contracts/contracts-<prev month>.csv`` (rows updated before the last
31 days) and ``contracts-<as_of month>.csv`` (rows updated since, re-delivered rows, newer
versions); the same for permits; ``payroll/payroll-<period>.csv`` for the three months
before as_of; ``registry/contributors.csv``, ``registry/engagements.csv`` and
``employers/employers.csv``. The truth directory holds:

* ``findings.jsonl`` — one expected finding a line: ``rule``, ``employer_id`` (null for
  duplicate_contributor), ``person`` (``P0000001`` = person index 0), ``identifiers`` (every
  valid identifier of the person by kind: national_id, residence_id, border_number,
  passport_number — old and new —, contributor_id — all records), ``auto_registrable``
  (missing_registration with a resolved identity and two corroborating sources) and
  ``variant`` (which planted scenario).
* ``records.csv`` — ``feed,key,person`` for every delivered, non-quarantined row (feeds
  contracts, permits, payroll, registry, engagements; payroll key
  ``employer_id|period|<first identifier present>``, in the order national_id,
  residence_id, border_number, passport_number).
* ``quarantine.csv`` — ``feed,file,line,reason_kind``: file relative to the inbox, line
  1-based and counting the header (no field spans lines), reason one of missing_required,
  impossible_date, negative_amount, no_identifier.
* ``identifiers.csv`` — ``kind,value,person`` for every person (the scorer uses it to catch
  registrations that merge two people); ``mistyped.csv`` — ``feed,column,value,
  true_value,person`` for each identifier written with one wrong digit.
* ``summary.json`` — the spec, counts of findings, rows per file, quarantined rows per feed,
  noise applied and persons per scenario.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import hijridate
import numpy as np
import numpy.typing as npt

from reconciler.synth.names import (
    ARABIC_SCRIPT_CULTURES,
    CULTURE_INDEX,
    CULTURES,
    EMPLOYER_PREFIXES,
    EMPLOYER_SECTORS,
    EMPLOYER_SUFFIXES,
    TOKENS,
)

Arr = npt.NDArray[Any]

RULES = (
    "missing_registration",
    "late_registration",
    "wage_underdeclared",
    "wrong_employer",
    "identity_mismatch",
    "stale_engagement",
    "duplicate_contributor",
    "ghost_registration",
)
ID_KINDS = ("national_id", "residence_id", "border_number", "passport_number", "contributor_id")

NATIONALITIES = ("SAU", "IND", "PAK", "BGD", "PHL", "EGY", "NPL", "YEM", "SDN")
_FOREIGN_SHARE = np.array([0.25, 0.18, 0.18, 0.10, 0.12, 0.07, 0.05, 0.05])
_FEMALE_SHARE = np.array([0.30, 0.10, 0.05, 0.05, 0.50, 0.05, 0.05, 0.05, 0.05])
# nationalities where "1 January" is the usual stand-in for an unknown birthday
_JAN1_NATS = np.array([2, 3, 5, 6, 7, 8])
_NAT_CULTURE = np.array([CULTURE_INDEX[c] for c in (
    "saudi", "indian", "south_asian_muslim", "bangla", "filipino", "egyptian", "nepali",
    "yemeni", "sudanese")])
_OCCUPATIONS = np.array([7212, 7112, 9313, 5120, 5131, 8322, 9112, 7411, 7126, 5153, 8332,
                         9329, 5414, 7231, 6111, 2221, 3313, 1120, 2411, 4110])

C_NONE, C_ACTIVE, C_TERMINATED = 0, 1, 2
CONTRACT_STATUS = ("", "ACTIVE", "TERMINATED")
P_VALID, P_EXPIRED, P_CANCELLED, P_FINAL_EXIT = 0, 1, 2, 3
PERMIT_STATUS = ("VALID", "EXPIRED", "CANCELLED", "FINAL_EXIT")
ENGAGEMENT_STATUS = ("ACTIVE", "ENDED")
_CONNECTORS = np.array(["", "bin ", "Bin ", "ibn ", "bint ", "Bint "], dtype=object)
_CONNECTORS_AR = ("", "بن ", "بنت ")

DAY = np.timedelta64(1, "D")
NAT = np.datetime64("NaT", "D")


# --------------------------------------------------------------------------- specification


@dataclass
class SignRates:
    """Share of workers planted with each sign (per person; variants split evenly)."""

    missing_registration: float = 0.02
    late_registration: float = 0.02
    wage_underdeclared: float = 0.02
    wrong_employer: float = 0.01
    identity_mismatch: float = 0.01
    stale_engagement: float = 0.02
    duplicate_contributor: float = 0.01
    ghost_registration: float = 0.01
    # both late and under-declared on the same engagement: two findings for one person
    late_and_underdeclared: float = 0.003


@dataclass
class NoiseRates:
    """How much noise. ``*_persons`` and scenario rates are shares of workers, row rates are
    shares of the rows of a feed, ``no_payroll_employers`` a share of employers."""

    # employers and careers
    no_payroll_employers: float = 0.20
    job_history: float = 0.15  # an earlier, properly ended job elsewhere
    # negative scenarios: look like a sign, are not one
    lookalike: float = 0.01  # persons in pairs: same name, 1 Jan birth date, nationality
    recent_hire: float = 0.01  # started < grace_days ago; half not registered yet
    recent_termination: float = 0.005  # contract ended < 30 days ago
    future_contract: float = 0.003  # signed with another employer, starts after as_of
    wage_within_tolerance: float = 0.01  # declared 95.5–99.5 % of the evidence wage
    contract_above_payroll: float = 0.01  # payroll (the evidence) below the contract wage
    # identifiers
    border_stage: float = 0.03  # of foreigners: feeds still on the border number
    renewed_passport: float = 0.05  # of foreigners: the registry holds the old passport
    contract_without_residence_id: float = 0.03  # of foreign contracts: passport only
    payroll_passport_only: float = 0.03  # of foreign payroll lines
    registry_passport_only: float = 0.02  # of foreign contributors
    mistyped_identifier: float = 0.005  # of rows: one digit changed (fails Luhn)
    # names and birth dates
    transliteration: float = 0.25  # per name part per row: another spelling
    dropped_middle: float = 0.10
    reordered_name: float = 0.05  # family name first
    upper_case: float = 0.15
    lower_case: float = 0.03
    name_ar_blank: float = 0.30  # Arabic form known, feed left it blank
    sex_blank: float = 0.05
    hijri_birth_date: float = 0.03  # of rows (four times as often for Saudis)
    year_only_birth_date: float = 0.01  # of persons, in one partner feed
    # deliveries
    redelivered: float = 0.02  # identical row again in a later file of the feed
    contract_new_version: float = 0.02  # of contracts: a later version (raise / correction)
    permit_new_version: float = 0.01  # of permits: renewed, later version
    malformed: float = 0.005  # of rows per partner feed; must be quarantined


@dataclass
class WorldSpec:
    workers: int = 1000
    seed: int = 7
    as_of: date = date(2026, 11, 1)
    employers: int | None = None  # default: workers / 25, at least 3
    citizen_share: float = 0.20
    signs: SignRates = field(default_factory=SignRates)
    noise: NoiseRates = field(default_factory=NoiseRates)

    def employer_count(self) -> int:
        n = self.employers if self.employers is not None else round(self.workers / 25)
        return max(3, min(n, self.workers))


# --------------------------------------------------------------------------- small helpers


def luhn_complete(body: Arr) -> Arr:
    """Append the Luhn check digit to each 9-digit body (vectorised ``DEFAULT_PROFILE.make``)."""
    body = body.astype(np.int64)
    total = np.zeros(body.shape, dtype=np.int64)
    rest = body.copy()
    for i in range(9):  # i = position from the right; even positions are doubled
        d = rest % 10
        rest //= 10
        if i % 2 == 0:
            d = d * 2
            d = np.where(d > 9, d - 9, d)
        total += d
    out: Arr = body * 10 + (10 - total % 10) % 10
    return out


def mistype(values: Arr, rng: np.random.Generator) -> Arr:
    """Change one digit (never the kind prefix): Luhn catches every single-digit error."""
    pos = rng.integers(1, 10, values.size)  # digit position from the left, 1..9
    power = 10 ** (9 - pos)
    old = (values // power) % 10
    new = (old + rng.integers(1, 10, values.size)) % 10
    out: Arr = values + (new - old) * power
    return out


def _distinct(rng: np.random.Generator, n: int, space: int) -> Arr:
    """``n`` distinct integers in [0, space), in random order."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        draw = rng.integers(0, space, int((n - out.size) * 1.05) + 16)
        cand = np.concatenate([out, draw])
        _, first = np.unique(cand, return_index=True)
        out = cand[np.sort(first)]
    return out[:n]


def _split(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _month_start(d: np.datetime64, back: int) -> np.datetime64:
    m = d.astype("datetime64[M]") - np.timedelta64(back, "M")
    return np.datetime64(m, "D")


def _hijri(d: np.datetime64) -> str:
    y, m, dd = (int(x) for x in str(d).split("-"))
    h = hijridate.Gregorian(y, m, dd).to_hijri()
    return f"H{h.year:04d}-{h.month:02d}-{h.day:02d}"


# --------------------------------------------------------------------------- the world


@dataclass
class Table:
    """One feed's rows, column-wise, plus per-row bookkeeping (columns starting with ``_``:
    ``_person``, ``_file`` index into ``files``, ``_primary`` = counts for records.csv)."""

    feed: str
    files: list[str]
    cols: dict[str, Arr]

    def __len__(self) -> int:
        return int(self.cols["_person"].size)


@dataclass
class Malformed:
    feed: str
    file: int
    source_row: int  # a good row of the same table the broken copy was made from
    reason: str  # missing_required | impossible_date | negative_amount | no_identifier
    column: str  # the column that breaks the contract ("*" = every identifier column)
    value: str  # what goes in that column ("" = left empty)


@dataclass
class World:
    spec: WorldSpec
    as_of: np.datetime64
    periods: list[str]
    persons: dict[str, Arr]
    employers: dict[str, Arr]
    tables: dict[str, Table]
    truth: dict[str, Arr]  # rule, person, employer (-1 = null), auto_registrable, variant
    malformed: list[Malformed]
    mistyped: dict[str, Arr]  # feed, column, value, true_value, person
    counts: dict[str, int]  # noise applied, by kind
    scenarios: dict[str, int]  # persons per planted scenario (signs and decoys)
    lookalike_pairs: Arr  # (k, 2) person indices: a registered twin and its look-alike


@dataclass
class WorldSummary:
    persons: int
    employers: int
    findings: dict[str, int]
    auto_registrable: int
    rows: dict[str, int]  # per written file, relative to the inbox
    quarantined: dict[str, int]
    noise: dict[str, int]
    scenarios: dict[str, int]
    inbox: str = ""
    truth_dir: str = ""


class _Builder:
    """Builds the person-level state; one method per stage, see ``generate_world``."""

    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.A = np.datetime64(spec.as_of, "D")
        # the last three payroll periods: the three months before as_of
        self.pf = [_month_start(self.A, k) for k in (3, 2, 1)]
        self.pe = [_month_start(self.A, k) - DAY for k in (2, 1, 0)]
        self.periods = [str(p)[:7] for p in self.pf]
        self.n = spec.workers
        self.truth_parts: list[tuple[str, Arr, Arr, Arr, str]] = []
        self.counts: dict[str, int] = {}  # noise applied, by kind
        self.pairs: list[Arr] = []  # look-alike pairs (twin, other)

    # -- random helpers ------------------------------------------------------------------

    def u(self, lo: Arr | int, hi: Arr | int, size: int) -> Arr:
        """Uniform integers in [lo, hi] (inclusive; hi < lo collapses to lo)."""
        lo_a = np.asarray(lo, dtype=np.int64)
        hi_a = np.maximum(np.asarray(hi, dtype=np.int64), lo_a)
        out: Arr = self.rng.integers(lo_a, hi_a + 1, size)
        return out

    def days(self, lo: Arr | int, hi: Arr | int, size: int) -> Arr:
        return self.u(lo, hi, size).astype("timedelta64[D]")

    def ts(self, d: Arr) -> Arr:
        """A business-hours timestamp on each day."""
        secs = self.rng.integers(6 * 3600, 17 * 3600, d.size).astype("timedelta64[s]")
        out: Arr = d.astype("datetime64[s]") + secs
        return out

    # -- employers -----------------------------------------------------------------------

    def employers(self) -> None:
        rng, ne = self.rng, self.spec.employer_count()
        self.ne = ne
        self.emp_id = 7_000_000_000 + _distinct(rng, ne, 1_000_000_000)
        self.emp_weight = rng.lognormal(0.0, 1.0, ne)
        files = rng.random(ne) >= self.spec.noise.no_payroll_employers
        files[0], files[1] = True, False  # scenarios need both kinds
        self.files_payroll = files
        self.counts["employers_without_payroll"] = int((~files).sum())
        self.emp_payroll = np.flatnonzero(files)
        self.emp_nopayroll = np.flatnonzero(~files)
        p = self.emp_weight / self.emp_weight.sum()
        self.emp_p = p
        self.emp_p_pay = self.emp_weight[files] / self.emp_weight[files].sum()
        self.emp_p_nopay = self.emp_weight[~files] / self.emp_weight[~files].sum()

    def pick_emp(self, size: int, payroll: bool | None = None,
                 avoid: Sequence[Arr] = ()) -> Arr:
        """Employers weighted by size; no element equals its entry in any ``avoid`` array."""
        def draw(k: int) -> Arr:
            if payroll is None:
                return self.rng.choice(self.ne, k, p=self.emp_p)
            pool, p = ((self.emp_payroll, self.emp_p_pay) if payroll
                       else (self.emp_nopayroll, self.emp_p_nopay))
            return pool[self.rng.choice(pool.size, k, p=p)]
        out = draw(size)

        def clash(o: Arr) -> Arr:
            bad = np.zeros(size, dtype=bool)
            for a in avoid:
                bad |= o == a
            return bad

        for _ in range(50):
            bad = np.flatnonzero(clash(out))
            if bad.size == 0:
                break
            out[bad] = draw(bad.size)
        for _ in range(len(avoid) + 1):  # tiny worlds only: step to a free neighbour
            out = np.where(clash(out), (out + 1) % self.ne, out)
        return out.astype(np.int32)

    # -- persons -------------------------------------------------------------------------

    def persons(self) -> None:
        rng, n, A = self.rng, self.n, self.A
        cit = rng.random(n) < self.spec.citizen_share
        nat = np.where(cit, 0, 1 + rng.choice(8, n, p=_FOREIGN_SHARE / _FOREIGN_SHARE.sum()))
        self.cit, self.nat = cit, nat.astype(np.int8)
        self.sex = (rng.random(n) < _FEMALE_SHARE[nat]).astype(np.int8)
        self.age_days = rng.integers(21 * 365, 58 * 365, n)
        dob = A - self.age_days.astype("timedelta64[D]")
        jan1 = np.isin(nat, _JAN1_NATS) & (rng.random(n) < 0.08)
        dob[jan1] = dob[jan1].astype("datetime64[Y]").astype("datetime64[D]")
        self.dob = dob
        culture = _NAT_CULTURE[nat].copy()
        culture[(nat == 1) & (rng.random(n) < 0.25)] = CULTURE_INDEX["south_asian_muslim"]
        self.culture = culture.astype(np.int8)
        self._draw_names(np.arange(n))

        # identifiers: unique bodies, Luhn-completed
        self.nid = np.zeros(n, dtype=np.int64)
        self.rid = np.zeros(n, dtype=np.int64)
        self.bn = np.zeros(n, dtype=np.int64)
        fi, ci = np.flatnonzero(~cit), np.flatnonzero(cit)
        self.nid[ci] = luhn_complete(100_000_000 + _distinct(rng, ci.size, 100_000_000))
        self.rid[fi] = luhn_complete(200_000_000 + _distinct(rng, fi.size, 100_000_000))
        bn_body = _distinct(rng, fi.size, 200_000_000)  # prefixes 3 and 4
        self.bn[fi] = luhn_complete(300_000_000 + bn_body)
        renewed = np.zeros(n, dtype=bool)
        renewed[fi] = rng.random(fi.size) < self.spec.noise.renewed_passport
        self.counts["renewed_passport"] = int(renewed.sum())
        n_pp = fi.size + int(renewed.sum())
        codes = _distinct(rng, n_pp, 676 * 10_000_000)
        letters = np.array([a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"], dtype=object)
        digits = np.strings.zfill((codes % 10_000_000).astype(str), 7).astype(object)
        self.passports = letters[codes // 10_000_000] + digits
        self.pp_new = np.full(n, -1, dtype=np.int32)
        self.pp_old = np.full(n, -1, dtype=np.int32)
        self.pp_new[fi] = np.arange(fi.size)
        self.k_main = np.full(n, -1, dtype=np.int64)  # contributor ids, set with the registry
        self.k_second = np.full(n, -1, dtype=np.int64)
        self.pp_old[renewed] = fi.size + np.arange(int(renewed.sum()))

        # wages (whole currency units: basic multiple of 100, housing a quarter of it)
        basic = np.where(cit, rng.integers(40, 200, n),
                         np.where(nat == 4, rng.integers(15, 50, n), rng.integers(10, 40, n)))
        self.basic = basic.astype(np.int64) * 100
        self.housing = np.where(rng.random(n) < 0.1, 0, self.basic // 4)
        self.other = np.where(rng.random(n) < 0.4, rng.integers(0, 8, n) * 50, 0)
        self.occ = _OCCUPATIONS[rng.integers(0, _OCCUPATIONS.size, n)]

        # job slot: anchors first (one per employer, so every payroll employer files every
        # period), everyone else weighted by employer size
        order = rng.permutation(n)
        self.anchor = np.zeros(n, dtype=bool)
        self.anchor[order[: self.ne]] = True
        self.e1 = np.empty(n, dtype=np.int32)
        self.e1[order[: self.ne]] = np.arange(self.ne)
        self.e1[order[self.ne:]] = self.pick_emp(n - self.ne)
        room = self.age_days - 19 * 365  # nobody starts work before 19
        lo = np.where(self.anchor, 100, 45)
        self.s1 = A - self.days(lo, np.minimum(3650, room), n)

        # every slot array, then the default (clean) state for everyone
        self.c1 = np.zeros(n, dtype=np.int8)
        self.c1_end = np.full(n, NAT)
        self.c1_ver = np.zeros(n, dtype=np.int8)  # 1 raise, 2 correction, 3 status change
        self.c1_upd = np.zeros(n, dtype="datetime64[s]")
        self.c1_basic = self.basic.copy()
        self.c1_housing = self.housing.copy()
        self.c_idmode = np.zeros(n, dtype=np.int8)  # 1 passport only, 2 border, 3 mistyped
        self.p_has = np.zeros(n, dtype=bool)
        self.p_sponsor = np.full(n, -1, dtype=np.int32)
        self.p_status = np.zeros(n, dtype=np.int8)
        self.p_issue = np.full(n, NAT)
        self.p_expiry = np.full(n, NAT)
        self.p_upd = np.zeros(n, dtype="datetime64[s]")
        self.p_ver = np.zeros(n, dtype=np.int8)  # 1 renewal, 2 status change
        self.p_bn = rng.random(n) < 0.25
        self.p_pp = rng.random(n) < 0.9
        self.pay_emp = np.full(n, -1, dtype=np.int32)
        self.pay_mask = np.zeros(n, dtype=np.int8)
        self.pay_basic = self.basic.copy()
        self.pay_housing = self.housing.copy()
        self.reg = np.ones(n, dtype=bool)
        self.regkind = np.zeros(n, dtype=np.int8)  # 1 passport only, 2 border, 3 mistyped
        self.reg2 = np.zeros(n, dtype=np.int8)  # 1 passport, 2 border, 3 same national id
        self.eng_emp = np.full(n, -1, dtype=np.int32)
        self.eng_start = np.full(n, NAT)
        self.eng_reg = np.full(n, NAT)
        self.eng_wage = np.zeros(n, dtype=np.int64)
        self.eng_on2 = np.zeros(n, dtype=bool)
        self.e0 = np.full(n, -1, dtype=np.int32)
        self.s0 = np.full(n, NAT)
        self.end0 = np.full(n, NAT)
        self.eng0 = np.zeros(n, dtype=bool)
        self.b0 = self.basic.copy()
        self.ef = np.full(n, -1, dtype=np.int32)
        self.sf = np.full(n, NAT)
        self.border = np.zeros(n, dtype=bool)
        self.im = np.zeros(n, dtype=np.int8)  # identity_mismatch kind: 1 dob, 2 nat, 3 sex
        self.reg_dob = np.full(n, NAT)
        self.reg_nat = np.full(n, -1, dtype=np.int8)
        self.yo_feed = np.zeros(n, dtype=np.int8)  # year-only birth date: 1 contract 2 permit
        self.scenario = np.zeros(n, dtype=np.int16)
        self.scenario_names = ["clean"]
        self.taken = self.anchor.copy()
        self.derive(np.arange(n))

    def _draw_names(self, idx: Arr) -> None:
        """Name tokens per (culture, sex) group; each person gets a preferred spelling."""
        rng = self.rng
        if not hasattr(self, "g_tok"):
            n = self.n
            self.g_tok = np.zeros(n, dtype=np.int32)
            self.m_tok = np.full(n, -1, dtype=np.int32)
            self.f_tok = np.zeros(n, dtype=np.int32)
            self.binf = np.zeros(n, dtype=bool)
        for ci, cult in enumerate(CULTURES):
            for sx in (0, 1):
                sel = idx[(self.culture[idx] == ci) & (self.sex[idx] == sx)]
                if sel.size == 0:
                    continue
                for slot, arr in (("given", self.g_tok), ("middle", self.m_tok),
                                  ("family", self.f_tok)):
                    ids, p = TOKENS.pools[(ci, slot, sx)]
                    arr[sel] = ids[rng.choice(ids.size, sel.size, p=p)]
                no_mid = rng.random(sel.size) >= cult.middle_rate
                self.m_tok[sel[no_mid]] = -1
                self.binf[sel] = cult.connector & (rng.random(sel.size) < 0.5)
        self.g_var = rng.integers(0, TOKENS.count[self.g_tok])
        self.m_var = rng.integers(0, TOKENS.count[np.maximum(self.m_tok, 0)])
        self.f_var = rng.integers(0, TOKENS.count[self.f_tok])

    # -- deriving the clean state of the job slot ---------------------------------------

    def derive(self, idx: Arr) -> None:
        """Set contract, permit, payroll and engagement of ``idx`` from their ``e1``/``s1``
        so that no rule fires: contract ACTIVE, permit VALID, payroll from the first full
        period after the start, registered 0–20 days after the start at the exact wage."""
        if idx.size == 0:
            return
        A, k = self.A, idx.size
        e, s = self.e1[idx], self.s1[idx]
        # a re-hire at the earlier employer would make the old contract's start the start
        # of employment there (late_registration): the earlier job moves elsewhere
        same = idx[(self.e0[idx] >= 0) & (self.e0[idx] == e)]
        self.e0[same] = self.pick_emp(same.size, avoid=(self.e1[same],))
        self.c1[idx] = C_ACTIVE
        self.c1_end[idx] = NAT
        self.c1_ver[idx] = 0
        self.c1_upd[idx] = self.ts(s - self.days(1, 14, k))
        self.c1_basic[idx] = self.basic[idx]
        self.c1_housing[idx] = self.housing[idx]
        self.pay_basic[idx] = self.basic[idx]
        self.pay_housing[idx] = self.housing[idx]
        foreign = ~self.cit[idx]
        self.p_has[idx] = foreign
        self.p_sponsor[idx] = e
        self.p_status[idx] = P_VALID
        self.p_ver[idx] = 0
        # the latest annual permit: issued within the last year, never before the job
        issue = np.maximum(A - self.days(20, 360, k), s)
        self.p_issue[idx] = issue
        self.p_expiry[idx] = issue + 364 * DAY
        self.p_upd[idx] = self.ts(issue)
        files = self.files_payroll[np.maximum(e, 0)] & (e >= 0)
        self.pay_emp[idx] = np.where(files, e, -1)
        # a period is paid when it starts on or after the start: the first payroll period
        # can then never be earlier than the contract start (late_registration stays exact)
        mask = np.zeros(k, dtype=np.int8)
        for bit, first in enumerate(self.pf):
            mask |= ((first >= s) * (1 << bit)).astype(np.int8)
        self.pay_mask[idx] = np.where(files, mask, 0)
        reg = self.reg[idx]
        self.eng_emp[idx] = np.where(reg, e, -1)
        self.eng_start[idx] = s
        self.eng_reg[idx] = np.minimum(s + self.days(0, 20, k), A - DAY)
        self.eng_wage[idx] = self.basic[idx] + self.housing[idx]

    def set_start(self, idx: Arr, lo: int, hi: int) -> None:
        room = self.age_days[idx] - 19 * 365
        self.s1[idx] = self.A - self.days(lo, np.minimum(hi, room), idx.size)
        # an earlier job that would now overlap the current one is dropped
        self.clear_prior(idx[(self.e0[idx] >= 0) & (self.end0[idx] >= self.s1[idx])])

    def unregister(self, idx: Arr) -> None:
        self.reg[idx] = False
        self.eng_emp[idx] = -1
        self.reg2[idx] = 0
        self.regkind[idx] = 0
        self.clear_prior(idx)

    def clear_prior(self, idx: Arr) -> None:
        self.e0[idx] = -1
        self.eng0[idx] = False

    def set_prior(self, idx: Arr, engaged: bool) -> None:
        """An earlier job at e0, ended 1–60 days before the current one started (s1 is moved
        into the last year so the earlier job fits any adult's working life)."""
        k = idx.size
        if k == 0:
            return
        self.set_start(idx, 60, 365)
        self.derive(idx)
        self.e0[idx] = self.pick_emp(k, avoid=(self.e1[idx],))
        self.end0[idx] = self.s1[idx] - self.days(1, 60, k)
        self.s0[idx] = self.end0[idx] - self.days(200, 600, k)
        self.eng0[idx] = engaged
        self.b0[idx] = np.maximum(500, self.basic[idx] - 100 * self.u(0, 5, k))

    # -- scenario bookkeeping ------------------------------------------------------------

    def take(self, k: int, who: str, name: str) -> Arr:
        """``k`` untouched, non-anchor persons (``who``: any / foreign / citizen)."""
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        ok = ~self.taken & ~self.border
        if who == "foreign":
            ok &= ~self.cit
        elif who == "citizen":
            ok &= self.cit
        pool = np.flatnonzero(ok)
        if pool.size < k:
            raise ValueError(f"world too small to plant {k} × {name}; raise workers")
        idx = np.sort(self.rng.choice(pool, k, replace=False))
        self.taken[idx] = True
        if name not in self.scenario_names:
            self.scenario_names.append(name)
        self.scenario[idx] = self.scenario_names.index(name)
        return idx

    def expect(self, rule: str, idx: Arr, employer: Arr | int, auto: bool, variant: str) -> None:
        emp = np.broadcast_to(np.asarray(employer, dtype=np.int64), idx.shape).copy()
        self.truth_parts.append((rule, idx.astype(np.int64), emp,
                                 np.full(idx.size, auto), variant))

    # -- noise chosen before the scenarios ----------------------------------------------

    def careers(self) -> None:
        nz, rng = self.spec.noise, self.rng
        cand = np.flatnonzero(~self.anchor & (rng.random(self.n) < nz.job_history))
        self.set_prior(cand, engaged=True)
        self.counts["job_history"] = int(cand.size)
        # border stage: still on the border number in contract and payroll
        k = round(nz.border_stage * int((~self.cit).sum()))
        idx = self.take(k, "foreign", "border_stage")
        self.make_border(idx)
        self.counts["border_stage"] = int(idx.size)
        self.taken[idx] = False  # border-stage persons stay clean; ``take`` skips them

    def make_border(self, idx: Arr) -> None:
        if idx.size == 0:
            return
        k = idx.size
        self.clear_prior(idx)
        self.border[idx] = True
        self.set_start(idx, 60, 200)
        self.derive(idx)
        issue = np.minimum(self.s1[idx] + self.days(15, 40, k), self.A - DAY)
        self.p_issue[idx] = issue
        self.p_expiry[idx] = issue + 364 * DAY
        self.p_upd[idx] = self.ts(issue)
        self.p_bn[idx] = True
        self.p_pp[idx] = True
        self.c_idmode[idx] = 2
        self.regkind[idx] = np.where(self.rng.random(k) < 0.5, 2, 0)

    # -- the signs -----------------------------------------------------------------------

    def plant(self) -> None:
        sr, n = self.spec.signs, self.n

        def cnt(rate: float) -> int:
            return max(1, round(rate * n)) if rate > 0 else 0

        self.plant_missing(cnt(sr.missing_registration))
        self.plant_late(cnt(sr.late_registration))
        self.plant_wage(cnt(sr.wage_underdeclared))
        self.plant_wrong_employer(cnt(sr.wrong_employer))
        self.plant_identity(cnt(sr.identity_mismatch))
        self.plant_stale(cnt(sr.stale_engagement))
        self.plant_duplicate(cnt(sr.duplicate_contributor))
        self.plant_ghost(cnt(sr.ghost_registration))
        self.plant_combo(cnt(sr.late_and_underdeclared))

    def lookalike_pairs(self, k: int, name: str, twin_name: str) -> tuple[Arr, Arr]:
        """``k`` pairs (a, b) of foreigners made look-alikes: b takes a's nationality, name
        (tokens and preferred spellings), sex and birth date, and both are born on 1 January.
        Residence ids stay different."""
        a = self.take(k, "foreign", twin_name)
        b = self.take(k, "foreign", name)
        self.pairs.append(np.stack([a, b], axis=1))
        for arr in (self.nat, self.culture, self.sex, self.g_tok, self.m_tok, self.f_tok,
                    self.g_var, self.m_var, self.f_var, self.binf):
            arr[b] = arr[a]
        jan1 = self.dob[a].astype("datetime64[Y]").astype("datetime64[D]")
        self.dob[a] = jan1
        self.dob[b] = jan1
        # keep the twins' ages consistent with their (new) birth dates
        self.age_days[a] = (self.A - jan1).astype(np.int64)
        self.age_days[b] = self.age_days[a]
        for x in (a, b):
            self.clear_prior(x)
            self.set_start(x, 45, 3650)
            self.derive(x)
        return a, b

    def plant_missing(self, n: int) -> None:
        p = _split(n, 8)
        rule = "missing_registration"
        # confidently nobody in the registry, contract + permit (+ payroll)
        idx = self.take(p[0], "foreign", "mr_new_foreign")
        self.unregister(idx)
        self.derive(idx)
        self.expect(rule, idx, self.e1[idx], True, "new_foreign")
        # a citizen nobody registered: contract + payroll
        idx = self.take(p[1], "citizen", "mr_new_citizen")
        self.unregister(idx)
        self.e1[idx] = self.pick_emp(idx.size, payroll=True)
        self.derive(idx)
        self.expect(rule, idx, self.e1[idx], True, "new_citizen")
        # border-stage newcomer: contract and payroll on the border number only
        idx = self.take(p[2], "foreign", "mr_border_stage")
        self.unregister(idx)
        self.make_border(idx)
        self.expect(rule, idx, self.e1[idx], True, "border_stage")
        # a known contributor (earlier job properly ended) not registered at the new job
        idx = self.take(p[3], "any", "mr_known_contributor")
        cit = idx[self.cit[idx]]
        self.e1[cit] = self.pick_emp(cit.size, payroll=True)  # second source for citizens
        self.set_prior(idx, engaged=True)
        self.eng_emp[idx] = -1
        self.expect(rule, idx, self.e1[idx], True, "known_contributor")
        # review cases: a single source
        idx = self.take(p[4], "citizen", "mr_contract_only")
        self.unregister(idx)
        self.e1[idx] = self.pick_emp(idx.size, payroll=False)
        self.derive(idx)
        self.expect(rule, idx, self.e1[idx], False, "contract_only")
        idx = self.take(p[5], "citizen", "mr_payroll_only")
        self.unregister(idx)
        self.e1[idx] = self.pick_emp(idx.size, payroll=True)
        self.set_start(idx, 200, 3000)
        self.derive(idx)
        self.c1[idx] = C_NONE
        self.pay_mask[idx] = 7  # started = the first payroll period, three months ago
        self.expect(rule, idx, self.e1[idx], False, "payroll_only")
        idx = self.take(p[6], "foreign", "mr_permit_only")
        self.unregister(idx)
        self.e1[idx] = self.pick_emp(idx.size, payroll=False)
        self.derive(idx)
        self.c1[idx] = C_NONE
        issue = self.A - self.days(45, 300, idx.size)
        self.p_issue[idx] = issue
        self.p_expiry[idx] = issue + 364 * DAY
        self.p_upd[idx] = self.ts(issue)
        self.expect(rule, idx, self.e1[idx], False, "permit_only")
        # identity ambiguous: a registered look-alike twin exists (the twin stays clean)
        _, b = self.lookalike_pairs(p[7], "mr_lookalike", "lookalike_twin_registered")
        self.unregister(b)
        self.derive(b)
        self.expect(rule, b, self.e1[b], False, "lookalike")

    def plant_late(self, n: int) -> None:
        p, rule = _split(n, 3), "late_registration"
        idx = self.take(p[0], "any", "lr_simple")
        self.set_start(idx, 60, 1500)
        self.derive(idx)
        tenure = (self.A - self.s1[idx]).astype(np.int64)
        self.eng_reg[idx] = self.s1[idx] + self.days(31, np.minimum(400, tenure - 1), idx.size)
        self.expect(rule, idx, self.e1[idx], False, "simple")
        # the employer declared a later start than the contract's: registration looks
        # timely against its own start_date, late against the contract
        idx = self.take(p[1], "any", "lr_declared_late_start")
        self.set_start(idx, 90, 1500)
        self.derive(idx)
        tenure = (self.A - self.s1[idx]).astype(np.int64)
        reg = self.s1[idx] + self.days(45, np.minimum(400, tenure - 1), idx.size)
        self.eng_reg[idx] = reg
        self.eng_start[idx] = reg - self.days(0, 15, idx.size)
        self.expect(rule, idx, self.e1[idx], False, "declared_late_start")
        # no contract: the start is the first payroll period (late under either reading of
        # a period as a date: its first or its last day)
        idx = self.take(p[2], "citizen", "lr_payroll_start")
        self.e1[idx] = self.pick_emp(idx.size, payroll=True)
        self.set_start(idx, 200, 3000)
        self.derive(idx)
        self.c1[idx] = C_NONE
        self.pay_mask[idx] = 7
        self.eng_start[idx] = self.pf[1] + self.days(0, 10, idx.size)
        self.eng_reg[idx] = self.pe[0] + 31 * DAY + self.days(0, 10, idx.size)
        self.expect(rule, idx, self.e1[idx], False, "payroll_start")

    def underdeclare(self, idx: Arr, evidence: Arr) -> None:
        ratio = self.rng.uniform(0.5, 0.88, idx.size)
        self.eng_wage[idx] = np.floor(evidence * ratio).astype(np.int64)

    def plant_wage(self, n: int) -> None:
        p, rule = _split(n, 3), "wage_underdeclared"
        idx = self.take(p[0], "any", "wu_payroll")
        self.e1[idx] = self.pick_emp(idx.size, payroll=True)
        self.derive(idx)
        self.underdeclare(idx, self.pay_basic[idx] + self.pay_housing[idx])
        self.expect(rule, idx, self.e1[idx], False, "payroll")
        idx = self.take(p[1], "any", "wu_contract")
        self.e1[idx] = self.pick_emp(idx.size, payroll=False)
        self.derive(idx)
        self.underdeclare(idx, self.c1_basic[idx] + self.c1_housing[idx])
        self.expect(rule, idx, self.e1[idx], False, "contract")
        # a raise paid (payroll) but neither in the contract nor declared: payroll is the
        # evidence wage whenever there is a payroll line
        idx = self.take(p[2], "any", "wu_raise_not_declared")
        self.e1[idx] = self.pick_emp(idx.size, payroll=True)
        self.derive(idx)
        raised = np.round(self.basic[idx] * self.rng.uniform(1.15, 1.6, idx.size), -2)
        self.pay_basic[idx] = raised.astype(np.int64)
        self.expect(rule, idx, self.e1[idx], False, "raise_not_declared")

    def plant_wrong_employer(self, n: int) -> None:
        p, rule = _split(n, 3), "wrong_employer"
        for k, who, name in ((p[0], "foreign", "we_moved"), (p[2], "citizen", "we_moved_citizen")):
            # left A (contract TERMINATED, engagement never ended), now works at B = e1
            idx = self.take(k, who, name)
            self.set_prior(idx, engaged=False)
            self.end0[idx] = self.s1[idx] - self.days(1, 30, idx.size)
            self.eng_emp[idx] = self.e0[idx]
            self.eng_start[idx] = self.s0[idx]
            self.eng_reg[idx] = self.s0[idx] + self.days(0, 20, idx.size)
            self.eng_wage[idx] = self.b0[idx] + self.b0[idx] // 4
            self.expect(rule, idx, self.e1[idx], False, name[3:])
        # registered by an establishment that never appears with the person in any feed
        idx = self.take(p[1], "any", "we_never_at_registered")
        # avoid the earlier employer too: its old contract would date the start back
        self.eng_emp[idx] = self.pick_emp(idx.size, avoid=(self.e1[idx], self.e0[idx]))
        self.expect(rule, idx, self.e1[idx], False, "never_at_registered")

    def plant_identity(self, n: int) -> None:
        p, rule = _split(n, 3), "identity_mismatch"
        idx = self.take(p[0], "foreign", "im_birth_date")
        self.im[idx] = 1
        d = self.dob[idx]
        y = d.astype("datetime64[Y]")
        mo = (d.astype("datetime64[M]") - y.astype("datetime64[M]")).astype(np.int64) + 1
        dd = (d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
        swap = (dd <= 12) & (dd != mo)
        swapped = (y.astype("datetime64[M]") + (dd - 1).astype("timedelta64[M]")).astype(
            "datetime64[D]") + (mo - 1).astype("timedelta64[D]")
        shifted = d - (365 * self.u(1, 3, idx.size)).astype("timedelta64[D]")
        self.reg_dob[idx] = np.where(swap, swapped, shifted)
        self.expect(rule, idx, self.e1[idx], False, "birth_date")
        idx = self.take(p[1], "foreign", "im_nationality")
        self.im[idx] = 2
        self.reg_nat[idx] = 1 + (self.nat[idx] - 1 + self.u(1, 7, idx.size)) % 8
        self.expect(rule, idx, self.e1[idx], False, "nationality")
        idx = self.take(p[2], "foreign", "im_sex")
        self.im[idx] = 3
        self.expect(rule, idx, self.e1[idx], False, "sex")

    def plant_stale(self, n: int) -> None:
        p, rule, A = _split(n, 3), "stale_engagement", self.A
        # contract TERMINATED more than 30 days ago (half reported late, as a new version)
        idx = self.take(p[0], "any", "se_contract_terminated")
        k = idx.size
        # started before the (expired) permit was issued, so no reading of "employment
        # started" can date the start after the registration
        self.set_start(idx, 400, 3000)
        self.derive(idx)
        end = A - self.days(31, 250, k)
        self.c1[idx] = C_TERMINATED
        self.c1_end[idx] = end
        late = self.rng.random(k) < 0.5
        self.c1_ver[idx] = np.where(late, 3, 0)
        self.c1_upd[idx] = np.where(late, self.ts(A - self.days(1, 30, k)),
                                    self.ts(end + self.days(0, 7, k)))
        expiry = A - self.days(1, 30, k)  # an expired permit is no termination signal
        self.p_status[idx] = P_EXPIRED
        self.p_expiry[idx] = expiry
        self.p_issue[idx] = expiry - 364 * DAY
        self.p_upd[idx] = self.ts(expiry)
        mask = np.zeros(k, dtype=np.int8)
        for bit in (0, 1):  # paid for full months before the end, never the newest period
            mask |= (((self.pf[bit] + 27 * DAY) <= end) * (1 << bit)).astype(np.int8)
        self.pay_mask[idx] &= mask
        self.expect(rule, idx, self.e1[idx], False, "contract_terminated")
        # permit CANCELLED / FINAL_EXIT; contract ended only days ago (or absent)
        idx = self.take(p[1], "foreign", "se_permit_exit")
        k = idx.size
        self.e1[idx] = self.pick_emp(k, payroll=False)
        self.set_start(idx, 300, 3000)
        self.derive(idx)
        self.p_status[idx] = np.where(self.rng.random(k) < 0.5, P_FINAL_EXIT, P_CANCELLED)
        newer = self.rng.random(k) < 0.5
        self.p_ver[idx] = np.where(newer, 2, 0)
        self.p_upd[idx] = self.ts(A - self.days(1, 30, k))
        end = A - self.days(3, 25, k)
        self.c1[idx] = np.where(self.rng.random(k) < 0.7, C_TERMINATED, C_NONE)
        self.c1_end[idx] = end
        self.c1_upd[idx] = self.ts(np.minimum(end + self.days(0, 2, k), A - DAY))
        self.expect(rule, idx, self.e1[idx], False, "permit_exit")
        # the employer kept filing payroll without the person for the last two periods
        idx = self.take(p[2], "any", "se_payroll_gone")
        k = idx.size
        self.e1[idx] = self.pick_emp(k, payroll=True)
        self.set_start(idx, 450, 3000)
        self.derive(idx)
        self.c1[idx] = C_NONE
        self.pay_mask[idx] = 1
        expiry = self.pf[1] + self.days(0, 20, k)
        self.p_status[idx] = P_EXPIRED
        self.p_expiry[idx] = expiry
        self.p_issue[idx] = expiry - 364 * DAY
        self.p_upd[idx] = self.ts(expiry)
        self.expect(rule, idx, self.e1[idx], False, "payroll_gone")

    def plant_duplicate(self, n: int) -> None:
        p, rule = _split(n, 3), "duplicate_contributor"
        for k, who, kind, name in ((p[0], "foreign", 1, "dc_passport_record"),
                                   (p[1], "foreign", 2, "dc_border_record"),
                                   (p[2], "citizen", 3, "dc_same_national_id")):
            idx = self.take(k, who, name)
            self.reg2[idx] = kind
            self.p_pp[idx] |= kind == 1
            self.p_bn[idx] |= kind == 2
            self.eng_on2[idx] = self.rng.random(idx.size) < 0.4
            self.expect(rule, idx, -1, False, name[3:])

    def plant_ghost(self, n: int) -> None:
        p, rule, A = _split(n, 3), "ghost_registration", self.A

        def vanish(idx: Arr) -> None:
            self.c1[idx] = C_NONE
            self.p_has[idx] = False
            self.pay_emp[idx] = -1
            self.pay_mask[idx] = 0
            self.e1[idx] = -1

        for k, payroll, name in ((p[0], None, "gr_nowhere"), (p[1], True, "gr_payroll_employer")):
            idx = self.take(k, "any", name)
            self.clear_prior(idx)
            vanish(idx)
            self.eng_emp[idx] = self.pick_emp(idx.size, payroll=payroll)
            room = self.age_days[idx] - 19 * 365
            self.eng_start[idx] = A - self.days(60, np.minimum(1500, room), idx.size)
            self.eng_reg[idx] = self.eng_start[idx] + self.days(0, 20, idx.size)
            self.expect(rule, idx, self.eng_emp[idx], False, name[3:])
        # an honest earlier job elsewhere, then a registration at E with nothing behind it
        idx = self.take(p[2], "any", "gr_with_history")
        k = idx.size
        self.set_prior(idx, engaged=True)
        self.p_sponsor[idx] = self.e0[idx]
        ghost_at = self.pick_emp(k, avoid=(self.e0[idx],))
        vanish(idx)
        self.p_has[idx] = ~self.cit[idx]
        expiry = np.minimum(self.end0[idx] + self.days(0, 30, k), A - DAY)
        self.p_status[idx] = P_EXPIRED
        self.p_expiry[idx] = expiry
        self.p_issue[idx] = np.maximum(expiry - 364 * DAY, self.s0[idx])
        self.p_upd[idx] = self.ts(expiry)
        self.eng_emp[idx] = ghost_at
        # end0 is at least 61 days ago: registered at least 41 days ago, beyond the grace
        self.eng_start[idx] = self.end0[idx] + self.days(1, 10, k)
        self.eng_reg[idx] = self.eng_start[idx] + self.days(0, 10, k)
        self.expect(rule, idx, ghost_at, False, "with_history")

    def plant_combo(self, n: int) -> None:
        idx = self.take(n, "any", "late_and_underdeclared")
        self.set_start(idx, 60, 1500)
        self.derive(idx)
        tenure = (self.A - self.s1[idx]).astype(np.int64)
        self.eng_reg[idx] = self.s1[idx] + self.days(31, np.minimum(400, tenure - 1), idx.size)
        paid = self.pay_emp[idx] >= 0
        evidence = np.where(paid, self.pay_basic[idx] + self.pay_housing[idx],
                            self.c1_basic[idx] + self.c1_housing[idx])
        self.underdeclare(idx, evidence)
        self.expect("late_registration", idx, self.e1[idx], False, "with_wage_underdeclared")
        self.expect("wage_underdeclared", idx, self.e1[idx], False, "with_late_registration")

    # -- negative scenarios ------------------------------------------------------------

    def decoys(self) -> None:
        nz, n, A, rng = self.spec.noise, self.n, self.A, self.rng

        def cnt(rate: float) -> int:
            return round(rate * n)

        self.lookalike_pairs(cnt(nz.lookalike) // 2, "lookalike", "lookalike_twin")
        idx = self.take(cnt(nz.recent_hire), "any", "recent_hire")
        k = idx.size
        self.s1[idx] = A - self.days(1, 29, k)
        self.derive(idx)
        left = ((A - DAY) - self.s1[idx]).astype(np.int64)
        issue = self.s1[idx] + self.u(0, left, k).astype("timedelta64[D]")
        self.p_issue[idx] = issue
        self.p_expiry[idx] = issue + 364 * DAY
        self.p_upd[idx] = self.ts(issue)
        self.eng_reg[idx] = self.s1[idx] + self.u(0, left, k).astype("timedelta64[D]")
        self.unregister(idx[rng.random(k) < 0.5])
        idx = self.take(cnt(nz.recent_termination), "any", "recent_termination")
        end = A - self.days(1, 26, idx.size)
        self.c1[idx] = C_TERMINATED
        self.c1_end[idx] = end
        self.c1_upd[idx] = self.ts(np.minimum(end + self.days(0, 1, idx.size), A - DAY))
        idx = self.take(cnt(nz.future_contract), "any", "future_contract")
        self.ef[idx] = self.pick_emp(idx.size, avoid=(self.e1[idx],))
        self.sf[idx] = A + self.days(5, 45, idx.size)
        idx = self.take(cnt(nz.wage_within_tolerance), "any", "wage_within_tolerance")
        paid = self.pay_emp[idx] >= 0
        ev = np.where(paid, self.pay_basic[idx] + self.pay_housing[idx],
                      self.c1_basic[idx] + self.c1_housing[idx])
        low = np.ceil(ev * rng.uniform(0.955, 0.995, idx.size)).astype(np.int64)
        self.eng_wage[idx] = np.maximum(low, (ev * 95) // 100 + 1)
        idx = self.take(cnt(nz.contract_above_payroll), "any", "contract_above_payroll")
        self.e1[idx] = self.pick_emp(idx.size, payroll=True)
        self.derive(idx)
        self.c1_basic[idx] = np.round(self.basic[idx] * rng.uniform(1.1, 1.3, idx.size), -2)

    # -- noise on identifiers, after the scenarios -------------------------------------

    def identifier_noise(self) -> None:
        nz, rng, n = self.spec.noise, self.rng, self.n
        foreign = ~self.cit
        renewed = self.pp_old >= 0
        # registry holds only the passport (never when the registry passport is the old one)
        sel = (foreign & self.reg & ~renewed & (self.regkind == 0)
               & (rng.random(n) < nz.registry_passport_only))
        self.regkind[sel] = 1
        self.p_pp[sel] = True
        self.counts["registry_passport_only"] = int(sel.sum())
        # registry residence id mistyped; the (current) passport beside it still links
        sel = (foreign & self.reg & ~renewed & (self.regkind == 0)
               & (rng.random(n) < nz.mistyped_identifier))
        self.regkind[sel] = 3
        self.p_pp[sel] = True
        self.counts["mistyped_registry"] = int(sel.sum())
        # contract on the passport alone: the permit must then carry that passport
        has_c = self.c1 != C_NONE
        sel = (foreign & has_c & self.p_has & (self.c_idmode == 0)
               & (rng.random(n) < nz.contract_without_residence_id))
        self.c_idmode[sel] = 1
        self.p_pp[sel] = True
        self.counts["contract_without_residence_id"] = int(sel.sum())
        sel = (foreign & has_c & self.p_has & (self.c_idmode == 0)
               & (rng.random(n) < nz.mistyped_identifier))
        self.c_idmode[sel] = 3
        self.p_pp[sel] = True
        self.counts["mistyped_contract"] = int(sel.sum())
        # year-only birth date in one partner feed (never for identity-mismatch persons)
        sel = (self.im == 0) & (rng.random(n) < nz.year_only_birth_date)
        self.yo_feed[sel] = np.where(self.p_has[sel] & (rng.random(int(sel.sum())) < 0.5), 2, 1)
        self.counts["year_only_birth_date"] = int(sel.sum())
        # contract versions: a raise, or a corrected typo in the wage
        sel = ((self.scenario == 0) & (self.c1 == C_ACTIVE) & (self.c1_ver == 0)
               & (rng.random(n) < nz.contract_new_version))
        idx = np.flatnonzero(sel)
        self.c1_ver[idx] = np.where(rng.random(idx.size) < 0.5, 1, 2)
        self.c1_upd[idx] = self.ts(self.A - self.days(1, 30, idx.size))
        self.counts["contract_new_version"] = int(idx.size)
        # permit renewed in the last month: the older version is still in the earlier file
        sel = ((self.scenario == 0) & self.p_has & (self.p_status == P_VALID)
               & (self.p_ver == 0) & ~self.border & (rng.random(n) < nz.permit_new_version))
        idx = np.flatnonzero(sel)
        start = np.maximum(self.A - self.days(1, 30, idx.size), self.s1[idx] + 366 * DAY)
        idx = idx[start < self.A]  # a renewal needs a year of service first
        start = start[start < self.A]
        self.p_ver[idx] = 1
        self.p_issue[idx] = start
        self.p_expiry[idx] = start + 364 * DAY
        self.p_upd[idx] = self.ts(start)
        self.counts["permit_new_version"] = int(idx.size)

    def finish(self) -> None:
        self.reg_dob = np.where(self.im == 1, self.reg_dob, self.dob)
        self.reg_nat = np.where(self.im == 2, self.reg_nat, self.nat).astype(np.int8)
        self.reg_sex = np.where(self.im == 3, 1 - self.sex, self.sex).astype(np.int8)
        # Arabic-script name per person, when every part has one
        ar_ok = (TOKENS.has_arabic[self.g_tok] & TOKENS.has_arabic[self.f_tok]
                 & ((self.m_tok < 0) | TOKENS.has_arabic[np.maximum(self.m_tok, 0)]))
        ar_ok &= np.isin(self.culture, [CULTURE_INDEX[c] for c in ARABIC_SCRIPT_CULTURES])
        conn = np.where(self.binf, np.where(self.sex == 1, 2, 1), 0)
        ar = (TOKENS.arabic[self.g_tok] + " " + np.array(_CONNECTORS_AR, dtype=object)[conn]
              + np.where(self.m_tok >= 0, TOKENS.arabic[np.maximum(self.m_tok, 0)] + " ", "")
              + TOKENS.arabic[self.f_tok])
        self.name_ar = np.where(ar_ok, ar, "").astype(object)


# --------------------------------------------------------------------------- tables


class _Tables:
    """Renders the person state into feed tables (still column-wise and numeric)."""

    def __init__(self, b: _Builder) -> None:
        self.b = b
        self.rng = b.rng
        self.nz = b.spec.noise
        A = b.A
        self.cut = (A - 31 * DAY).astype("datetime64[s]")  # rows updated since go to file 2
        prev, cur = str(_month_start(A, 1))[:7], str(A)[:7]
        self.files = {
            "contracts": [f"contracts/contracts-{prev}.csv", f"contracts/contracts-{cur}.csv"],
            "permits": [f"permits/permits-{prev}.csv", f"permits/permits-{cur}.csv"],
            "payroll": [f"payroll/payroll-{p}.csv" for p in b.periods],
            "contributors": ["registry/contributors.csv"],
            "engagements": ["registry/engagements.csv"],
        }
        self.mistyped: list[tuple[str, str, Arr, Arr, Arr]] = []

    def names(self, p: Arr, allow_reorder: bool = True) -> dict[str, Arr]:
        """Per-row spelling choices: flat indices into the token spellings plus style bits."""
        b, rng, nz, k = self.b, self.rng, self.nz, p.size

        def spell(tok: Arr, base: Arr) -> Arr:
            valid = tok >= 0
            t = np.maximum(tok, 0)
            var = np.where(rng.random(k) < nz.transliteration,
                           rng.integers(0, TOKENS.count[t]), base)
            return np.where(valid, TOKENS.offset[t] + var, TOKENS.empty).astype(np.int32)

        g = spell(b.g_tok[p], b.g_var[p])
        m = spell(b.m_tok[p], b.m_var[p])
        m[rng.random(k) < nz.dropped_middle] = TOKENS.empty
        f = spell(b.f_tok[p], b.f_var[p])
        female = b.sex[p] == 1
        conn = np.where(female, 4 + rng.integers(0, 2, k),
                        np.where(rng.random(k) < 0.15, 3, 1 + rng.integers(0, 2, k)))
        keep = b.binf[p] & (m != TOKENS.empty) & (rng.random(k) < 0.7)
        conn = np.where(keep, conn, 0).astype(np.int8)
        r = rng.random(k)
        style = np.where(r < nz.upper_case, 2, np.where(r < nz.upper_case + nz.lower_case, 4, 0))
        if allow_reorder:
            style |= (rng.random(k) < nz.reordered_name).astype(np.int64)
        return {"_ng": g, "_nm": m, "_nf": f, "_nc": conn, "_ns": style.astype(np.int8),
                "_ar": (b.name_ar[p] != "") & (rng.random(k) >= nz.name_ar_blank)}

    def dob_fmt(self, p: Arr) -> Arr:
        """0 ISO, 1 Hijri (never for identity-mismatch persons), 2 year only (set by caller)."""
        b, k = self.b, p.size
        rate = np.where(b.cit[p], 4 * self.nz.hijri_birth_date, self.nz.hijri_birth_date)
        h: Arr = (b.im[p] == 0) & (self.rng.random(k) < rate)
        return h.astype(np.int8)

    def sex_cells(self, p: Arr) -> Arr:
        b = self.b
        blank = (self.rng.random(p.size) < self.nz.sex_blank) & (b.im[p] != 3)
        out: Arr = np.where(blank, -1, b.sex[p]).astype(np.int8)
        return out

    def file_of(self, upd: Arr) -> Arr:
        out: Arr = (upd >= self.cut).astype(np.int8)
        return out

    def note_mistyped(self, feed: str, column: str, value: Arr, true: Arr, p: Arr) -> None:
        if value.size:
            self.mistyped.append((feed, column, value, true, p))

    @staticmethod
    def concat(parts: Sequence[dict[str, Arr]]) -> dict[str, Arr]:
        keys = parts[0].keys()
        return {k: np.concatenate([part[k] for part in parts]) for k in keys}

    def redeliver(self, cols: dict[str, Arr], src_file: int, dst_file: int) -> dict[str, Arr]:
        """Append an identical copy of some rows of ``src_file`` to ``dst_file``."""
        src = np.flatnonzero((cols["_file"] == src_file) & cols["_primary"])
        pick = src[self.rng.random(src.size) < self.nz.redelivered]
        copy = {k: v[pick] for k, v in cols.items()}
        copy["_file"] = np.full(pick.size, dst_file, dtype=np.int8)
        copy["_primary"] = np.zeros(pick.size, dtype=bool)
        self.b.counts[f"redelivered_{self.current}"] = int(pick.size)
        return self.concat([cols, copy])

    current = ""

    # -- contracts -----------------------------------------------------------------------

    def contracts(self) -> Table:
        b, rng = self.b, self.rng
        self.current = "contracts"
        parts: list[dict[str, Arr]] = []
        p1 = np.flatnonzero(b.c1 != C_NONE)
        p0 = np.flatnonzero(b.e0 >= 0)
        pf = np.flatnonzero(b.ef >= 0)
        cids = 10_000_000 + _distinct(rng, p1.size + p0.size + pf.size, 90_000_000)
        cid1, cid0, cidf = np.split(cids, [p1.size, p1.size + p0.size])
        self.spare_cids = cids  # malformed rows get fresh ids outside this set

        def rows(p: Arr, cid: Arr, emp: Arr, start: Arr, end: Arr, status: Arr, basic: Arr,
                 housing: Arr, upd: Arr, idmode: Arr, yo: Arr, primary: bool) -> dict[str, Arr]:
            k = p.size
            foreign = ~b.cit[p]
            nid = np.where(foreign, 0, b.nid[p])
            rid = np.where(foreign & ((idmode == 0) | (idmode == 3)), b.rid[p], 0)
            bn = np.where(idmode == 2, b.bn[p], 0)
            pp = np.where(foreign, b.pp_new[p], -1).astype(np.int32)
            fmt = self.dob_fmt(p)
            fmt[yo] = 2
            d = {"_person": p.astype(np.int64), "_file": self.file_of(upd),
                 "_primary": np.full(k, primary), "cid": cid, "emp": emp.astype(np.int32),
                 "nid": nid, "rid": rid, "bn": bn, "pp": pp, "nat": b.nat[p],
                 "dob": b.dob[p], "dobfmt": fmt, "sex": self.sex_cells(p), "occ": b.occ[p],
                 "start": start, "end": end, "status": status.astype(np.int8),
                 "basic": basic.astype(np.int64), "housing": housing.astype(np.int64),
                 "upd": upd}
            d.update(self.names(p))
            return d

        # the current job; versioned persons get their older version too
        yo1 = b.yo_feed[p1] == 1
        newest = rows(p1, cid1, b.e1[p1], b.s1[p1], b.c1_end[p1], b.c1[p1], b.c1_basic[p1],
                      b.c1_housing[p1], b.c1_upd[p1], b.c_idmode[p1], yo1, True)
        mis = np.flatnonzero(b.c_idmode[p1] == 3)
        true_rid = newest["rid"][mis].copy()
        newest["rid"][mis] = mistype(true_rid, rng)
        self.note_mistyped("contracts", "residence_id", newest["rid"][mis], true_rid, p1[mis])
        parts.append(newest)
        v = np.flatnonzero(b.c1_ver[p1] != 0)
        pv = p1[v]
        kind = b.c1_ver[pv]
        old_basic = np.where(kind == 1, np.maximum(500, np.round(b.c1_basic[pv] * 0.9, -2)),
                             np.where(kind == 2, b.c1_basic[pv] * 10, b.c1_basic[pv]))
        old_upd = self.b.ts(b.s1[pv] - self.b.days(1, 14, pv.size))
        old = rows(pv, cid1[v], b.e1[pv], b.s1[pv], np.full(pv.size, NAT),
                   np.full(pv.size, C_ACTIVE), old_basic, b.c1_housing[pv],
                   np.minimum(old_upd, self.cut - np.timedelta64(1, "s")),
                   b.c_idmode[pv], yo1[v], False)
        old["rid"] = newest["rid"][v]  # the same partner record: same identifiers
        old["_file"][:] = 0
        parts.append(old)
        # an earlier, properly ended job (registry may know the old passport from it)
        k0 = p0.size
        prior = rows(p0, cid0, b.e0[p0], b.s0[p0], b.end0[p0], np.full(k0, C_TERMINATED),
                     b.b0[p0], b.b0[p0] // 4, b.ts(b.end0[p0] + b.days(0, 5, k0)),
                     np.zeros(k0, dtype=np.int8), np.zeros(k0, dtype=bool), True)
        prior["pp"] = np.where(b.pp_old[p0] >= 0, b.pp_old[p0], prior["pp"]).astype(np.int32)
        parts.append(prior)
        kf = pf.size
        parts.append(rows(pf, cidf, b.ef[pf], b.sf[pf], np.full(kf, NAT),
                          np.full(kf, C_ACTIVE), b.basic[pf], b.housing[pf],
                          b.ts(b.A - b.days(1, 20, kf)), np.zeros(kf, dtype=np.int8),
                          np.zeros(kf, dtype=bool), True))
        cols = self.redeliver(self.concat(parts), 0, 1)
        return Table("contracts", self.files["contracts"], cols)

    # -- permits -------------------------------------------------------------------------

    def permits(self) -> Table:
        b = self.b
        self.current = "permits"
        p = np.flatnonzero(b.p_has)
        k = p.size
        yo = b.yo_feed[p] == 2

        def rows(sel: Arr, status: Arr, issue: Arr, expiry: Arr, upd: Arr,
                 primary: bool) -> dict[str, Arr]:
            q = p[sel]
            n = q.size
            fmt = self.dob_fmt(q)
            fmt[yo[sel]] = 2
            d = {"_person": q.astype(np.int64), "_file": self.file_of(upd),
                 "_primary": np.full(n, primary), "rid": b.rid[q],
                 "bn": np.where(b.p_bn[q], b.bn[q], 0),
                 "pp": np.where(b.p_pp[q], b.pp_new[q], -1).astype(np.int32),
                 "nat": b.nat[q], "dob": b.dob[q], "dobfmt": fmt, "sex": self.sex_cells(q),
                 "sponsor": b.p_sponsor[q], "occ": b.occ[q], "issue": issue, "expiry": expiry,
                 "status": status.astype(np.int8), "upd": upd}
            d.update(self.names(q))
            return d

        allr = np.arange(k)
        newest = rows(allr, b.p_status[p], b.p_issue[p], b.p_expiry[p], b.p_upd[p], True)
        v = np.flatnonzero(b.p_ver[p] != 0)
        q = p[v]
        renew = b.p_ver[q] == 1
        issue = np.where(renew, b.p_issue[q] - 365 * DAY, b.p_issue[q])
        expiry = np.where(renew, b.p_issue[q] - DAY, b.p_expiry[q])
        upd = np.minimum(b.ts(issue), self.cut - np.timedelta64(1, "s"))
        old = rows(v, np.full(v.size, P_VALID), issue, expiry, upd, False)
        for c in ("bn", "pp"):
            old[c] = newest[c][v]
        old["_file"][:] = 0
        cols = self.redeliver(self.concat([newest, old]), 0, 1)
        return Table("permits", self.files["permits"], cols)

    # -- payroll -------------------------------------------------------------------------

    def payroll(self) -> Table:
        b, rng, nz = self.b, self.rng, self.nz
        self.current = "payroll"
        parts: list[dict[str, Arr]] = []
        for bit in range(3):
            p = np.flatnonzero((b.pay_emp >= 0) & ((b.pay_mask >> bit) & 1).astype(bool))
            k = p.size
            foreign = ~b.cit[p]
            nid = np.where(foreign, 0, b.nid[p])
            rid = np.where(foreign & ~b.border[p], b.rid[p], 0)
            bn = np.where(b.border[p], b.bn[p], 0)
            pp = np.full(k, -1, dtype=np.int32)
            # passport only: that passport must appear in the contract or the permit
            linked = (b.c1[p] != C_NONE) | (b.p_has[p] & b.p_pp[p])
            pp_only = foreign & linked & (rng.random(k) < nz.payroll_passport_only)
            pp[pp_only] = b.pp_new[p[pp_only]]
            rid[pp_only] = 0
            bn[pp_only] = 0
            # mistyped: only where the person is known elsewhere under the right number
            known = (b.c1[p] != C_NONE) | b.reg[p] | b.p_has[p]
            mis = ~pp_only & known & (rng.random(k) < nz.mistyped_identifier)
            for col, arr, name in ((nid, b.nid, "national_id"), (rid, b.rid, "residence_id"),
                                   (bn, b.bn, "border_number")):
                m = mis & (col != 0)
                col[m] = mistype(arr[p[m]], rng)
                self.note_mistyped("payroll", name, col[m], arr[p[m]], p[m])
            pe = self.b.pe[bit]
            paid = pe - self.b.days(0, 4, k)
            d: dict[str, Arr] = {
                 "_person": p.astype(np.int64), "_file": np.full(k, bit, dtype=np.int8),
                 "_primary": np.ones(k, dtype=bool), "emp": b.pay_emp[p],
                 "period": np.full(k, bit, dtype=np.int8), "nid": nid, "rid": rid, "bn": bn,
                 "pp": pp, "basic": b.pay_basic[p], "housing": b.pay_housing[p],
                 "other": b.other[p], "paid": paid}
            d.update(self.names(p))
            parts.append(d)
        cols = self.redeliver(self.concat(parts), 1, 2)
        return Table("payroll", self.files["payroll"], cols)

    # -- registry ------------------------------------------------------------------------

    def registry(self) -> tuple[Table, Table]:
        b, rng = self.b, self.rng
        main = np.flatnonzero(b.reg)
        second = np.flatnonzero(b.reg & (b.reg2 > 0))
        kids = 100_000_000 + _distinct(rng, main.size + second.size, 900_000_000)
        b.k_main = np.full(b.n, -1, dtype=np.int64)
        b.k_second = np.full(b.n, -1, dtype=np.int64)
        b.k_main[main] = kids[: main.size]
        b.k_second[second] = kids[main.size:]

        def rows(p: Arr, kid: Arr, kind: Arr) -> dict[str, Arr]:
            k = p.size
            foreign = ~b.cit[p]
            renewed = b.pp_old[p] >= 0
            nid = np.where(foreign, 0, b.nid[p])
            rid = np.where(foreign & ((kind == 0) | (kind == 3)), b.rid[p], 0)
            bn = np.where(foreign & (kind == 2), b.bn[p], 0)
            pp_reg = np.where(renewed, b.pp_old[p], b.pp_new[p])
            pp = np.where(foreign & ((kind == 0) | (kind == 1) | (kind == 3)), pp_reg, -1)
            d: dict[str, Arr] = {
                 "_person": p.astype(np.int64), "_file": np.zeros(k, dtype=np.int8),
                 "_primary": np.ones(k, dtype=bool), "kid": kid, "nid": nid, "rid": rid,
                 "bn": bn, "pp": pp.astype(np.int32), "nat": b.reg_nat[p], "dob": b.reg_dob[p],
                 "dobfmt": self.dob_fmt(p), "sex": b.reg_sex[p]}
            d.update(self.names(p))
            return d

        r1 = rows(main, b.k_main[main], b.regkind[main])
        mis = np.flatnonzero(b.regkind[main] == 3)
        true = r1["rid"][mis].copy()
        r1["rid"][mis] = mistype(true, rng)
        self.note_mistyped("contributors", "residence_id", r1["rid"][mis], true, main[mis])
        # second records: passport alone (kind 1), border number alone (2), same national id
        kind2 = np.where(b.reg2[second] == 2, 2, 1).astype(np.int8)
        r2 = rows(second, b.k_second[second], kind2)
        r2["pp"] = np.where(b.reg2[second] == 1, b.pp_new[second], r2["pp"]).astype(np.int32)
        contributors = Table("contributors", self.files["contributors"], self.concat([r1, r2]))

        act = np.flatnonzero(b.reg & (b.eng_emp >= 0))
        ended = np.flatnonzero(b.reg & b.eng0 & (b.e0 >= 0))
        gids = 100_000_000 + _distinct(rng, act.size + ended.size, 900_000_000)
        on2 = b.eng_on2[act] & (b.k_second[act] >= 0)
        eng: dict[str, Arr] = {
            "_person": np.concatenate([act, ended]).astype(np.int64),
            "_file": np.zeros(act.size + ended.size, dtype=np.int8),
            "_primary": np.ones(act.size + ended.size, dtype=bool),
            "gid": gids,
            "kid": np.concatenate([np.where(on2, b.k_second[act], b.k_main[act]),
                                   b.k_main[ended]]),
            "emp": np.concatenate([b.eng_emp[act], b.e0[ended]]),
            "start": np.concatenate([b.eng_start[act], b.s0[ended]]),
            "end": np.concatenate([np.full(act.size, NAT), b.end0[ended]]),
            "status": np.concatenate([np.zeros(act.size, dtype=np.int8),
                                      np.ones(ended.size, dtype=np.int8)]),
            "reg": np.concatenate([b.eng_reg[act],
                                   b.s0[ended] + b.days(0, 20, ended.size)]),
            "wage": np.concatenate([b.eng_wage[act], b.b0[ended] + b.b0[ended] // 4]),
            "occ": np.concatenate([b.occ[act], b.occ[ended]]),
        }
        return contributors, Table("engagements", self.files["engagements"], eng)

    # -- malformed rows ------------------------------------------------------------------

    def malformed(self, tables: dict[str, Table]) -> list[Malformed]:
        """Broken copies of good rows of clean persons, one contract violation each."""
        b, rng = self.b, self.rng
        out: list[Malformed] = []
        plans: dict[str, list[tuple[str, list[str]]]] = {
            "contracts": [
                ("missing_required", ["contract_id", "employer_id", "nationality", "name_en",
                                      "date_of_birth", "start_date", "status", "basic_wage",
                                      "updated_at"]),
                ("impossible_date", ["start_date", "date_of_birth"]),
                ("negative_amount", ["basic_wage", "housing_allowance"]),
                ("no_identifier", ["*"]),
            ],
            "permits": [
                ("missing_required", ["residence_id", "sponsor_id", "nationality", "name_en",
                                      "date_of_birth", "issue_date", "expiry_date", "status",
                                      "updated_at"]),
                ("impossible_date", ["issue_date", "expiry_date", "date_of_birth"]),
                ("no_identifier", ["*"]),
            ],
            "payroll": [
                ("missing_required", ["employer_id", "period", "name_en", "basic_wage"]),
                ("impossible_date", ["period"]),
                ("negative_amount", ["basic_wage"]),
                ("no_identifier", ["*"]),
            ],
        }
        bad_dates = ["{y}-02-30", "{y}-04-31", "{y}-06-31", "{y}-09-31", "{y}-11-31",
                     "{y}-13-05", "{y}-00-12", "{ny}-02-29"]
        for feed, plan in plans.items():
            t = tables[feed]
            good = np.flatnonzero(t.cols["_primary"] & (b.scenario[t.cols["_person"]] == 0))
            k = min(good.size, round(self.nz.malformed * len(t)))
            src = np.sort(rng.choice(good, k, replace=False)) if k else good[:0]
            for j, row in enumerate(src.tolist()):
                reason, columns = plan[j % len(plan)]
                column = columns[int(rng.integers(0, len(columns)))]
                value = ""
                if reason == "impossible_date":
                    if column == "period":
                        value = f"{b.periods[1][:4]}-{int(rng.choice([0, 13])):02d}"
                    else:
                        y = int(rng.integers(1970, 2026))
                        ny = y + 1 if y % 4 == 0 else y  # never a leap year
                        tpl = bad_dates[int(rng.integers(0, len(bad_dates)))]
                        value = tpl.format(y=y, ny=ny)
                elif reason == "negative_amount":
                    value = f"-{int(rng.integers(5, 60)) * 100}.00"
                out.append(Malformed(feed, int(t.cols["_file"][row]), row, reason, column,
                                     value))
        return out


# --------------------------------------------------------------------------- public API


def generate_world(spec: WorldSpec) -> World:
    """Plan a world: persons and their jobs, planted signs, noise, and the feed tables."""
    b = _Builder(spec)
    b.employers()
    b.persons()
    b.careers()
    b.plant()
    b.decoys()
    b.identifier_noise()
    b.finish()
    t = _Tables(b)
    tables = {"contracts": t.contracts(), "permits": t.permits(), "payroll": t.payroll()}
    tables["contributors"], tables["engagements"] = t.registry()
    malformed = t.malformed(tables)

    rules, persons, emps, autos, variants = [], [], [], [], []
    for rule, idx, emp, auto, variant in b.truth_parts:
        rules.append(np.full(idx.size, rule, dtype=object))
        persons.append(idx)
        emps.append(emp)
        autos.append(auto)
        variants.append(np.full(idx.size, variant, dtype=object))
    truth = {"rule": np.concatenate(rules), "person": np.concatenate(persons),
             "employer": np.concatenate(emps), "auto_registrable": np.concatenate(autos),
             "variant": np.concatenate(variants)}
    mistyped: dict[str, Arr] = {
        "feed": np.concatenate([np.full(m[2].size, m[0], dtype=object) for m in t.mistyped]
                               or [np.empty(0, dtype=object)]),
        "column": np.concatenate([np.full(m[2].size, m[1], dtype=object) for m in t.mistyped]
                                 or [np.empty(0, dtype=object)]),
        "value": np.concatenate([m[2] for m in t.mistyped] or [np.empty(0, np.int64)]),
        "true_value": np.concatenate([m[3] for m in t.mistyped] or [np.empty(0, np.int64)]),
        "person": np.concatenate([m[4] for m in t.mistyped] or [np.empty(0, np.int64)]),
    }
    persons_cols = {
        "citizen": b.cit, "nationality": b.nat, "sex": b.sex, "dob": b.dob,
        "national_id": b.nid, "residence_id": b.rid, "border_number": b.bn,
        "passport_new": b.pp_new, "passport_old": b.pp_old, "contributor_main": b.k_main,
        "contributor_second": b.k_second, "scenario": b.scenario, "employer": b.e1,
        "border_stage": b.border, "name_ar": b.name_ar,
    }
    _count_row_noise(b.counts, tables)
    hist = np.bincount(b.scenario, minlength=len(b.scenario_names))
    scenarios = {name: int(hist[i]) for i, name in enumerate(b.scenario_names) if i > 0}
    world = World(
        spec=spec, as_of=b.A, periods=b.periods, persons=persons_cols,
        employers={"id": b.emp_id, "files_payroll": b.files_payroll, "weight": b.emp_weight},
        tables=tables, truth=truth, malformed=malformed, mistyped=mistyped, counts=b.counts,
        scenarios=scenarios,
        lookalike_pairs=np.concatenate(b.pairs) if b.pairs else np.empty((0, 2), np.int64))
    world.persons["_passports"] = b.passports
    world.persons["_scenario_names"] = np.array(b.scenario_names, dtype=object)
    world.persons["_g"] = b.g_tok
    world.persons["_m"] = b.m_tok
    world.persons["_f"] = b.f_tok
    return world


def _count_row_noise(counts: dict[str, int], tables: dict[str, Table]) -> None:
    """Row-level noise, counted from the tables themselves."""
    for feed, t in tables.items():
        c = t.cols
        if "dobfmt" in c:
            counts[f"hijri_birth_date_{feed}"] = int((c["dobfmt"] == 1).sum())
            counts[f"year_only_birth_date_{feed}"] = int((c["dobfmt"] == 2).sum())
        if "_ns" in c:
            counts[f"reordered_name_{feed}"] = int((c["_ns"] & 1).astype(bool).sum())
            counts[f"case_changed_{feed}"] = int((c["_ns"] & 6).astype(bool).sum())
        if "pp" in c and feed == "payroll":
            counts["payroll_passport_only"] = int((c["pp"] >= 0).sum())


# --------------------------------------------------------------------------- rendering

_HEADERS = {
    "contracts": ["contract_id", "employer_id", "national_id", "residence_id", "border_number",
                  "passport_number", "nationality", "name_en", "name_ar", "date_of_birth", "sex",
                  "occupation_code", "start_date", "end_date", "status", "basic_wage",
                  "housing_allowance", "updated_at"],
    "permits": ["residence_id", "border_number", "passport_number", "nationality", "name_en",
                "name_ar", "date_of_birth", "sex", "sponsor_id", "occupation_code",
                "issue_date", "expiry_date", "status", "updated_at"],
    "payroll": ["employer_id", "period", "national_id", "residence_id", "border_number",
                "passport_number", "name_en", "basic_wage", "housing_allowance",
                "other_allowances", "paid_on"],
    "contributors": ["contributor_id", "national_id", "residence_id", "border_number",
                     "passport_number", "nationality", "name_en", "name_ar", "date_of_birth",
                     "sex"],
    "engagements": ["engagement_id", "contributor_id", "employer_id", "start_date", "end_date",
                    "status", "registered_on", "contributory_wage", "occupation_code"],
}
_ID_COLUMNS = ("national_id", "residence_id", "border_number", "passport_number")


class _Renderer:
    def __init__(self, world: World) -> None:
        self.w = world
        self.emp_ids = world.employers["id"].astype(str).astype(object)
        self.passports = world.persons["_passports"]
        self.nat = np.array(NATIONALITIES, dtype=object)
        self.name_ar = world.persons["name_ar"]
        self.hijri_cache: dict[str, str] = {}

    # -- cell renderers: numpy column → list of str ------------------------------------

    @staticmethod
    def ids(a: Arr) -> list[str]:
        s = a.astype(str).astype(object)
        s[a <= 0] = ""
        return list(s)

    @staticmethod
    def prefixed(a: Arr, prefix: str, width: int) -> list[str]:
        s = np.strings.zfill(a.astype(str), width)
        return list(np.where(a >= 0, np.strings.add(prefix, s), "").astype(object))

    def emp(self, a: Arr) -> list[str]:
        return list(np.where(a >= 0, self.emp_ids[np.maximum(a, 0)], ""))

    def pp(self, a: Arr) -> list[str]:
        return list(np.where(a >= 0, self.passports[np.maximum(a, 0)], ""))

    @staticmethod
    def dates(a: Arr) -> list[str]:
        s = np.datetime_as_string(a, unit="D").astype(object)
        s[np.isnat(a)] = ""
        return list(s)

    @staticmethod
    def stamps(a: Arr) -> list[str]:
        return list(np.strings.add(np.datetime_as_string(a, unit="s"), "Z").astype(object))

    @staticmethod
    def money(a: Arr) -> list[str]:
        return list(np.strings.add(a.astype(str), ".00").astype(object))

    @staticmethod
    def vocab(a: Arr, words: Sequence[str]) -> list[str]:
        return list(np.array(words, dtype=object)[a])

    def dob(self, d: Arr, fmt: Arr) -> list[str]:
        s = np.datetime_as_string(d, unit="D").astype(object)
        for i in np.flatnonzero(fmt == 1).tolist():
            key = s[i]
            if key not in self.hijri_cache:
                self.hijri_cache[key] = _hijri(d[i])
            s[i] = self.hijri_cache[key]
        yo = fmt == 2
        s[yo] = np.strings.slice(np.datetime_as_string(d[yo], unit="D"), 4).astype(object)
        return list(s)

    @staticmethod
    def sex(a: Arr) -> list[str]:
        return list(np.array(["M", "F", ""], dtype=object)[np.where(a < 0, 2, a)])

    def name(self, c: dict[str, Arr]) -> list[str]:
        g = TOKENS.spaced[c["_ng"]]
        m = TOKENS.spaced[c["_nm"]]
        f = TOKENS.spelling[c["_nf"]]
        conn = _CONNECTORS[c["_nc"]]
        names = (g + conn + m + f).astype(object)
        style = c["_ns"]
        for i in np.flatnonzero(style & 1).tolist():  # family name first
            names[i] = f"{f[i]} {g[i]}{conn[i]}{m[i]}".rstrip()
        out: list[str] = names.tolist()
        for i in np.flatnonzero(style & 2).tolist():
            out[i] = out[i].upper()
        for i in np.flatnonzero(style & 4).tolist():
            out[i] = out[i].lower()
        return out

    def name_ar_cells(self, c: dict[str, Arr]) -> list[str]:
        return list(np.where(c["_ar"], self.name_ar[c["_person"]], ""))

    # -- one table → columns of strings -----------------------------------------------

    def columns(self, feed: str, c: dict[str, Arr]) -> dict[str, list[str]]:
        if feed == "contracts":
            return {
                "contract_id": self.prefixed(c["cid"], "C", 8), "employer_id": self.emp(c["emp"]),
                "national_id": self.ids(c["nid"]), "residence_id": self.ids(c["rid"]),
                "border_number": self.ids(c["bn"]), "passport_number": self.pp(c["pp"]),
                "nationality": self.vocab(c["nat"], NATIONALITIES), "name_en": self.name(c),
                "name_ar": self.name_ar_cells(c), "date_of_birth": self.dob(c["dob"], c["dobfmt"]),
                "sex": self.sex(c["sex"]), "occupation_code": list(c["occ"].astype(str)),
                "start_date": self.dates(c["start"]), "end_date": self.dates(c["end"]),
                "status": self.vocab(c["status"], CONTRACT_STATUS),
                "basic_wage": self.money(c["basic"]),
                "housing_allowance": self.money(c["housing"]), "updated_at": self.stamps(c["upd"]),
            }
        if feed == "permits":
            return {
                "residence_id": self.ids(c["rid"]), "border_number": self.ids(c["bn"]),
                "passport_number": self.pp(c["pp"]),
                "nationality": self.vocab(c["nat"], NATIONALITIES), "name_en": self.name(c),
                "name_ar": self.name_ar_cells(c), "date_of_birth": self.dob(c["dob"], c["dobfmt"]),
                "sex": self.sex(c["sex"]), "sponsor_id": self.emp(c["sponsor"]),
                "occupation_code": list(c["occ"].astype(str)),
                "issue_date": self.dates(c["issue"]), "expiry_date": self.dates(c["expiry"]),
                "status": self.vocab(c["status"], PERMIT_STATUS),
                "updated_at": self.stamps(c["upd"]),
            }
        if feed == "payroll":
            return {
                "employer_id": self.emp(c["emp"]), "period": self.vocab(c["period"],
                                                                        self.w.periods),
                "national_id": self.ids(c["nid"]), "residence_id": self.ids(c["rid"]),
                "border_number": self.ids(c["bn"]), "passport_number": self.pp(c["pp"]),
                "name_en": self.name(c), "basic_wage": self.money(c["basic"]),
                "housing_allowance": self.money(c["housing"]),
                "other_allowances": self.money(c["other"]), "paid_on": self.dates(c["paid"]),
            }
        if feed == "contributors":
            return {
                "contributor_id": self.prefixed(c["kid"], "K", 9),
                "national_id": self.ids(c["nid"]), "residence_id": self.ids(c["rid"]),
                "border_number": self.ids(c["bn"]), "passport_number": self.pp(c["pp"]),
                "nationality": self.vocab(c["nat"], NATIONALITIES), "name_en": self.name(c),
                "name_ar": self.name_ar_cells(c), "date_of_birth": self.dob(c["dob"], c["dobfmt"]),
                "sex": self.sex(c["sex"]),
            }
        return {
            "engagement_id": self.prefixed(c["gid"], "G", 9),
            "contributor_id": self.prefixed(c["kid"], "K", 9), "employer_id": self.emp(c["emp"]),
            "start_date": self.dates(c["start"]), "end_date": self.dates(c["end"]),
            "status": self.vocab(c["status"], ENGAGEMENT_STATUS),
            "registered_on": self.dates(c["reg"]), "contributory_wage": self.money(c["wage"]),
            "occupation_code": list(c["occ"].astype(str)),
        }


def _take_rows(cols: dict[str, Arr], rows: Arr) -> dict[str, Arr]:
    return {k: v[rows] for k, v in cols.items()}


def _person_ids(p: Arr) -> list[str]:
    """P + 7 digits, 1-based (``P0000001`` is person index 0)."""
    return list(np.strings.add("P", np.strings.zfill((p + 1).astype(str), 7)).astype(object))


def _record_keys(feed: str, cells: dict[str, list[str]]) -> list[str]:
    if feed == "contracts":
        return cells["contract_id"]
    if feed == "permits":
        return cells["residence_id"]
    if feed == "contributors":
        return cells["contributor_id"]
    if feed == "engagements":
        return cells["engagement_id"]
    first = [n or r or bd or pp for n, r, bd, pp in zip(
        cells["national_id"], cells["residence_id"], cells["border_number"],
        cells["passport_number"], strict=True)]
    return [f"{e}|{p}|{f}" for e, p, f in zip(cells["employer_id"], cells["period"], first,
                                              strict=True)]


_CHUNK = 250_000


def write_world(world: World, inbox: Path, truth_dir: Path) -> WorldSummary:
    """Write the inbox (contract CSVs) and the ground truth; return what was written."""
    inbox, truth_dir = Path(inbox), Path(truth_dir)
    rng = np.random.default_rng([world.spec.seed, 1])  # layout only; independent of content
    r = _Renderer(world)
    rows_written: dict[str, int] = {}
    quarantine: list[tuple[str, str, int, str]] = []
    truth_dir.mkdir(parents=True, exist_ok=True)
    records = (truth_dir / "records.csv").open("w", encoding="utf-8", newline="")
    records.write("feed,key,person\n")

    feed_dir = {"contracts": "contracts", "permits": "permits", "payroll": "payroll",
                "contributors": "registry", "engagements": "registry"}
    record_feed = {"contributors": "registry"}
    bad_by_file: dict[tuple[str, int], list[Malformed]] = {}
    for m in world.malformed:
        bad_by_file.setdefault((m.feed, m.file), []).append(m)
    spare = 0
    used_cids = set(world.tables["contracts"].cols["cid"].tolist())

    for feed, table in world.tables.items():
        (inbox / feed_dir[feed]).mkdir(parents=True, exist_ok=True)
        header = _HEADERS[feed]
        for fi, fname in enumerate(table.files):
            good = np.flatnonzero(table.cols["_file"] == fi)
            if feed in ("contributors", "engagements"):
                key = table.cols["kid" if feed == "contributors" else "gid"][good]
                good = good[np.argsort(key, kind="stable")]
            else:
                good = good[rng.permutation(good.size)]
            bad = bad_by_file.get((feed, fi), [])
            bad_lines: list[str] = []
            if bad:
                src = np.array([m.source_row for m in bad])
                cells = r.columns(feed, _take_rows(table.cols, src))
                for j, m in enumerate(bad):
                    row = {c: cells[c][j] for c in header}
                    if feed == "contracts":  # a fresh key: the broken row shadows nothing
                        while 10_000_000 + spare in used_cids:
                            spare += 1
                        row["contract_id"] = f"C{10_000_000 + spare:08d}"
                        spare += 1
                    if feed == "permits":  # older than the good version: never supersedes
                        ts = np.datetime64(row["updated_at"][:-1]) - np.timedelta64(1, "D")
                        row["updated_at"] = f"{ts}Z"
                    if m.column == "*":
                        for c in _ID_COLUMNS:
                            row[c] = ""
                    else:
                        row[m.column] = m.value
                    bad_lines.append(",".join(row[c] for c in header))
            total = good.size + len(bad_lines)
            bad_pos = np.sort(rng.choice(total, len(bad_lines), replace=False))
            is_bad = np.zeros(total, dtype=bool)
            is_bad[bad_pos] = True
            for j, pos in enumerate(bad_pos.tolist()):
                quarantine.append((table.feed if feed not in record_feed else "registry",
                                   fname, pos + 2, bad[j].reason))
            path = inbox / fname
            with path.open("w", encoding="utf-8", newline="") as fh:
                fh.write(",".join(header) + "\n")
                gi = 0
                bi = 0
                for start in range(0, total, _CHUNK):
                    stop = min(total, start + _CHUNK)
                    n_bad = int(is_bad[start:stop].sum())
                    rows_idx = good[gi: gi + (stop - start - n_bad)]
                    gi += rows_idx.size
                    sub = _take_rows(table.cols, rows_idx)
                    cells = r.columns(feed, sub)
                    lines = [",".join(t) for t in zip(*(cells[c] for c in header), strict=True)]
                    out: list[str] = []
                    li = 0
                    for flag in is_bad[start:stop].tolist():
                        if flag:
                            out.append(bad_lines[bi])
                            bi += 1
                        else:
                            out.append(lines[li])
                            li += 1
                    fh.write("\n".join(out) + "\n")
                    prim = sub["_primary"]
                    keys = _record_keys(feed, cells)
                    pids = _person_ids(sub["_person"])
                    rf = record_feed.get(feed, feed)
                    records.write("".join(f"{rf},{k},{p}\n" for k, p, ok in zip(
                        keys, pids, prim.tolist(), strict=True) if ok))
            rows_written[fname] = total
    records.close()

    # employers
    emp_path = inbox / "employers" / "employers.csv"
    emp_path.parent.mkdir(parents=True, exist_ok=True)
    rows_written["employers/employers.csv"] = _write_employers(world, emp_path)

    findings = _write_truth(world, truth_dir, quarantine)
    quarantined: dict[str, int] = {}
    for feed, _, _, _ in quarantine:
        quarantined[feed] = quarantined.get(feed, 0) + 1
    noise = dict(world.counts)
    noise["mistyped_identifiers"] = int(world.mistyped["value"].size)
    auto = int(world.truth["auto_registrable"].sum())
    summary = WorldSummary(
        persons=world.spec.workers, employers=int(world.employers["id"].size), findings=findings,
        auto_registrable=auto, rows=rows_written, quarantined=quarantined, noise=noise,
        scenarios=dict(world.scenarios), inbox=str(inbox), truth_dir=str(truth_dir))
    spec = asdict(world.spec)
    spec["as_of"] = world.spec.as_of.isoformat()
    payload = {k: v for k, v in asdict(summary).items() if k not in ("inbox", "truth_dir")}
    payload["spec"] = spec
    payload["as_of"] = str(world.as_of)
    payload["payroll_periods"] = world.periods
    (truth_dir / "summary.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n",
                                            encoding="utf-8")
    return summary


def _write_employers(world: World, path: Path) -> int:
    rng = np.random.default_rng([world.spec.seed, 2])
    ids = world.employers["id"]
    n = ids.size
    order = np.argsort(ids)
    pre = rng.integers(0, len(EMPLOYER_PREFIXES), n)
    sec = rng.integers(0, len(EMPLOYER_SECTORS), n)
    suf = rng.integers(0, len(EMPLOYER_SUFFIXES), n)
    hook = rng.random(n) < 0.3
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("employer_id,name,email,webhook_url\n")
        for i in order.tolist():
            prefix, sector = EMPLOYER_PREFIXES[pre[i]], EMPLOYER_SECTORS[sec[i]]
            name = f"{prefix} {sector} {EMPLOYER_SUFFIXES[suf[i]]}"
            slug = f"{prefix}-{sector}".lower().replace(" ", "-") + f"-{i:05d}"
            url = f"https://{slug}.example/hooks/registration" if hook[i] else ""
            fh.write(f"{ids[i]},{name},hr@{slug}.example,{url}\n")
    return n


def person_identifiers(world: World, p: int) -> dict[str, list[str]]:
    """Every valid identifier the world gives person ``p`` (index), by kind."""
    pc = world.persons
    out: dict[str, list[str]] = {k: [] for k in ID_KINDS}
    for kind, col in (("national_id", "national_id"), ("residence_id", "residence_id"),
                      ("border_number", "border_number")):
        v = int(pc[col][p])
        if v > 0:
            out[kind].append(str(v))
    for col in ("passport_new", "passport_old"):
        v = int(pc[col][p])
        if v >= 0:
            out["passport_number"].append(str(pc["_passports"][v]))
    for col in ("contributor_main", "contributor_second"):
        v = int(pc[col][p])
        if v >= 0:
            out["contributor_id"].append(f"K{v:09d}")
    return out


def _iter_identifier_rows(world: World) -> Iterator[str]:
    """identifiers.csv lines, column-wise per kind (a million persons in a few seconds)."""
    pc = world.persons
    for kind, col, fmt in (("national_id", "national_id", None),
                           ("residence_id", "residence_id", None),
                           ("border_number", "border_number", None),
                           ("passport_number", "passport_new", "pp"),
                           ("passport_number", "passport_old", "pp"),
                           ("contributor_id", "contributor_main", "K"),
                           ("contributor_id", "contributor_second", "K")):
        a = pc[col]
        sel = np.flatnonzero(a > 0) if fmt is None else np.flatnonzero(a >= 0)
        if fmt is None:
            vals = a[sel].astype(str).tolist()
        elif fmt == "pp":
            vals = pc["_passports"][a[sel]].tolist()
        else:
            vals = np.strings.add("K", np.strings.zfill(a[sel].astype(str), 9)).tolist()
        pids = _person_ids(sel)
        yield "".join(f"{kind},{v},{p}\n" for v, p in zip(vals, pids, strict=True))


def _write_truth(world: World, truth_dir: Path,
                 quarantine: list[tuple[str, str, int, str]]) -> dict[str, int]:
    t: dict[str, Arr] = world.truth
    order = np.lexsort((np.array([RULES.index(x) for x in t["rule"]]), t["person"]))
    emp_ids = world.employers["id"]
    counts = dict.fromkeys(RULES, 0)
    with (truth_dir / "findings.jsonl").open("w", encoding="utf-8", newline="") as fh:
        for i in order.tolist():
            p = int(t["person"][i])
            e = int(t["employer"][i])
            rule = str(t["rule"][i])
            counts[rule] += 1
            rec = {"rule": rule, "employer_id": str(emp_ids[e]) if e >= 0 else None,
                   "person": f"P{p + 1:07d}",
                   "identifiers": person_identifiers(world, p),
                   "auto_registrable": bool(t["auto_registrable"][i]),
                   "variant": str(t["variant"][i])}
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    with (truth_dir / "quarantine.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["feed", "file", "line", "reason_kind"])
        rows: list[tuple[str, str, int, str]] = sorted(quarantine, key=lambda q: (q[1], q[2]))
        w.writerows(rows)
    with (truth_dir / "identifiers.csv").open("w", encoding="utf-8", newline="") as fh:
        fh.write("kind,value,person\n")
        for chunk in _iter_identifier_rows(world):
            fh.write(chunk)
    m = world.mistyped
    with (truth_dir / "mistyped.csv").open("w", encoding="utf-8", newline="") as fh:
        fh.write("feed,column,value,true_value,person\n")
        pids = _person_ids(m["person"])
        for f, c, v, tv, pid in zip(m["feed"].tolist(), m["column"].tolist(),
                                    m["value"].tolist(), m["true_value"].tolist(), pids,
                                    strict=True):
            fh.write(f"{'registry' if f == 'contributors' else f},{c},{v},{tv},{pid}\n")
    return counts



def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m reconciler.synth.world",
                                     description="Write a synthetic inbox and its truth.")
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 1))
    parser.add_argument("--employers", type=int, default=None)
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    args = parser.parse_args(argv)
    spec = WorldSpec(workers=args.workers, seed=args.seed, as_of=args.as_of,
                     employers=args.employers)
    summary = write_world(generate_world(spec), args.inbox, args.truth)
    print(json.dumps({"persons": summary.persons, "employers": summary.employers,
                      "findings": summary.findings, "auto_registrable": summary.auto_registrable,
                      "quarantined": summary.quarantined}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
