"""The scheduler lease: one active scheduler across replicas, through one database row.

Every daemon replica schedules the same jobs; only the replica holding the lease — the
*leader* — does their work. The others are *standby*: their jobs fire and return at once
(counted as ``skipped``), they serve the desk and ``/metrics``, and they poll the lease to
take over when it expires or is released.

**Gate, not pause.** Each job asks "do I lead?" right before its unit of work, instead of
the scheduler being paused on a standby and resumed on takeover. A resumed APScheduler
would run every slot it missed while paused (coalesced, within the misfire grace) — slots
the old leader already served, so a takeover right after 02:00 would reconcile twice. With
the gate a standby's slot is simply skipped, and the new leader catches up exactly what is
due (``reconciler.daemon``: every pull at once, a reconcile only if its last slot has no
successful run). A job also checks again between its units of work (each delivery of a
pull), so a leader that steps down stops at the next unit.

**The row** (``scheduler_lease``: name, holder, epoch, acquired_at, renewed_at,
expires_at; ``holder`` is ``host:pid:uuid``, so a restarted process is a new holder):

* *acquire* (a standby, every poll) — one conditional UPDATE,
  ``SET holder=:me, epoch=epoch+1, acquired_at=renewed_at=:now, expires_at=:now+ttl
  WHERE name=:n AND (holder=:me OR expires_at < :now)``. It is atomic on both databases:
  PostgreSQL re-checks the WHERE on the newest row version after waiting for a concurrent
  writer, SQLite has one writer at a time. With no row yet it INSERTs epoch 1; a concurrent
  INSERT by another replica violates the primary key and counts as "not acquired".
* *renew* (the leader, every ``lease.renew_seconds``, default TTL/3) —
  ``UPDATE … SET renewed_at, expires_at WHERE name AND holder=:me AND epoch=:mine``. No row
  matched: another replica took over, step down at once. A database error: step down at
  once too — the leader cannot know whether its lease will still be valid when the work it
  would do commits. It takes the lease back (a new epoch) at its next successful poll if
  nobody else did.
* *release* (clean shutdown) — ``expires_at = now`` for our epoch, so a standby takes over
  at its next poll instead of waiting for the TTL.

**Fencing.** The epoch grows on every acquisition, so it names one reign. The daemon runs
each job under :meth:`Fence.guard`: every transaction the job's thread commits first checks
— in that same transaction, right before COMMIT — that the row still names this holder and
epoch, and rolls back with :class:`LeaseLost` otherwise. On PostgreSQL the check is
``SELECT … FOR SHARE``, so a takeover's UPDATE waits for the commit in flight (there is no
gap between check and commit), and a commit waits for a takeover in flight and then sees it.
On SQLite a transaction that wrote holds the database's only write lock, so the row cannot
change between check and commit. A leader that stalled past its TTL (a long pause, a
stopped VM) while a standby took over therefore cannot commit anything: its transaction is
rolled back. What leaves the database — a Kafka send, an email — cannot be fenced; those
are at-least-once already (events carry ids consumers dedupe on; the relay's mark and the
notifier's claim are fenced, so the new leader sends again what the old one could not
mark). Only the epoch and holder fence, not the expiry: an expired lease that nobody took
over still means nobody else worked, so committing under it is safe.

**Clocks.** Expiry is decided on the database's clock. On PostgreSQL every acquire, renew
and release reads ``clock_timestamp()`` in its own transaction and both writes and compares
against it, so the replicas' clocks may disagree freely. SQLite is a local file: every
replica runs on the host that holds it (SQLite over a network file system is not
supported), so that host's UTC clock *is* the database's clock. A leader's own idea of how
long its lease lasts uses its monotonic clock, counted from the moment it *sent* the
renewal — never later than the database's ``now`` in it — so the leader trusts its lease a
little less long than the database does. That assumes clock *rates* agree over a TTL, not
clocks.

**TTL.** 30 s by default (``lease.ttl_seconds``), renewed every 10 s: two renewals can fail
(a database failover, a slow query) before the lease is at risk, and a dead leader is
replaced within 30 s — a standby sleeps until the lease it saw expires, not a whole poll
interval. A shorter TTL takes over faster but gives up leadership on shorter hiccups. On
SQLite keep the TTL above the longest write transaction (a reconcile's act stage): it
holds the only write lock, so a renewal waits for it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, event, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from reconciler.errors import ReconcilerError
from reconciler.health import SchedulerRole, SchedulerStatus
from reconciler.storage import scheduler_lease

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"  # the lease's name: one lease for the whole schedule


class LeaseLost(ReconcilerError):
    """This replica no longer holds the lease (or could not check that it does): the unit of
    work in progress is rolled back and the job ends; the new leader does it."""


def holder_id() -> str:
    """``host:pid:uuid`` — unique per process, readable in ``reconciler status`` and logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def db_now(conn: Connection) -> datetime:
    """The database's clock (see the module docstring): PostgreSQL's ``clock_timestamp()``;
    for SQLite, a local file, this host's UTC clock."""
    if conn.dialect.name == "postgresql":
        return _utc(conn.execute(text("SELECT clock_timestamp()")).scalar_one())
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseRow:
    name: str
    holder: str
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def remaining(self, now: datetime) -> float:
        """Seconds until it expires (negative: expired)."""
        return (self.expires_at - now).total_seconds()


def read_lease(conn: Connection, name: str = SCHEDULER) -> LeaseRow | None:
    row = conn.execute(select(scheduler_lease).where(scheduler_lease.c.name == name)
                       ).mappings().first()
    if row is None:
        return None
    return LeaseRow(name=row["name"], holder=row["holder"], epoch=int(row["epoch"]),
                    acquired_at=_utc(row["acquired_at"]), renewed_at=_utc(row["renewed_at"]),
                    expires_at=_utc(row["expires_at"]))


class SchedulerLease:
    """The lease row's three operations for one holder; each is one short transaction.
    Database errors propagate: the caller (:class:`LeaseKeeper`) decides what they mean."""

    def __init__(self, engine: Engine, holder: str | None = None, ttl_seconds: float = 30.0,
                 name: str = SCHEDULER) -> None:
        self.engine = engine
        self.holder = holder or holder_id()
        self.ttl = timedelta(seconds=ttl_seconds)
        self.name = name

    def try_acquire(self) -> int | None:
        """Take the lease if it is free, expired or already ours; the new epoch, or None."""
        t = scheduler_lease
        with self.engine.begin() as conn:
            now = db_now(conn)
            epoch = conn.execute(
                update(t).where(t.c.name == self.name,
                                or_(t.c.holder == self.holder, t.c.expires_at < now))
                .values(holder=self.holder, epoch=t.c.epoch + 1, acquired_at=now,
                        renewed_at=now, expires_at=now + self.ttl)
                .returning(t.c.epoch)).scalar_one_or_none()
            if epoch is not None:
                return int(epoch)
            if read_lease(conn, self.name) is not None:
                return None  # held by another replica and not expired
        try:
            with self.engine.begin() as conn:
                now = db_now(conn)
                conn.execute(insert(t).values(name=self.name, holder=self.holder, epoch=1,
                                              acquired_at=now, renewed_at=now,
                                              expires_at=now + self.ttl))
        except IntegrityError:
            return None  # another replica inserted the first row at the same moment
        return 1

    def renew(self, epoch: int) -> bool:
        """Extend our lease; False if the row no longer has our holder and epoch."""
        t = scheduler_lease
        with self.engine.begin() as conn:
            now = db_now(conn)
            moved = conn.execute(
                update(t).where(t.c.name == self.name, t.c.holder == self.holder,
                                t.c.epoch == epoch)
                .values(renewed_at=now, expires_at=now + self.ttl)).rowcount
        return bool(moved)

    def release(self, epoch: int) -> bool:
        """Expire our lease now (a clean shutdown) so a standby need not wait for the TTL."""
        t = scheduler_lease
        with self.engine.begin() as conn:
            now = db_now(conn)
            moved = conn.execute(
                update(t).where(t.c.name == self.name, t.c.holder == self.holder,
                                t.c.epoch == epoch)
                .values(expires_at=now)).rowcount
        return bool(moved)

    def current(self) -> tuple[LeaseRow | None, datetime]:
        """The row as it is now, and the database's now."""
        with self.engine.connect() as conn:
            return read_lease(conn, self.name), db_now(conn)


class Fence:
    """Fences the commits of a thread by the lease epoch it worked under.

    :meth:`guard` marks the current thread; while it is marked, every transaction on
    ``engine`` that the thread commits first checks the lease row in that transaction and
    raises :class:`LeaseLost` — the transaction is rolled back — if the holder or epoch
    changed. Threads that are not marked (the desk, the lease keeper) are never checked.
    """

    def __init__(self, engine: Engine, name: str = SCHEDULER) -> None:
        self.engine = engine
        self.name = name
        self._local = threading.local()
        event.listen(engine, "commit", self._on_commit)

    def close(self) -> None:
        event.remove(self.engine, "commit", self._on_commit)

    @contextmanager
    def guard(self, holder: str, epoch: int) -> Iterator[None]:
        previous = getattr(self._local, "token", None)
        self._local.token = (holder, epoch)
        try:
            yield
        finally:
            self._local.token = previous

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Commit without the check — for a job's own bookkeeping (its run record)."""
        previous = getattr(self._local, "token", None)
        self._local.token = None
        try:
            yield
        finally:
            self._local.token = previous

    def _on_commit(self, conn: Connection) -> None:
        token: tuple[str, int] | None = getattr(self._local, "token", None)
        if token is None:
            return
        holder, epoch = token
        if conn.dialect.name == "postgresql":
            sql = ("SELECT epoch FROM scheduler_lease WHERE name = %s AND holder = %s "
                   "AND epoch = %s FOR SHARE")
        else:
            sql = "SELECT epoch FROM scheduler_lease WHERE name = ? AND holder = ? AND epoch = ?"
        # the raw connection: we are inside SQLAlchemy's commit, before the driver's
        driver: Any = conn.connection.driver_connection
        try:
            cursor = driver.cursor()
            try:
                cursor.execute(sql, (self.name, holder, epoch))
                row = cursor.fetchone()
            finally:
                cursor.close()
        except Exception as exc:  # the driver's own error: the database went away
            raise LeaseLost(f"could not check the lease before committing: "
                            f"{type(exc).__name__}: {str(exc).strip()[:300]}") from exc
        if row is None:
            raise LeaseLost(f"lease lost: epoch {epoch} of {holder} is no longer current; "
                            "the transaction was rolled back")


class LeaseKeeper:
    """Holds the lease, or waits for it, in a thread of its own (so a long job never delays
    a renewal), and tells the daemon when it became leader and when it stepped down.

    ``role``: ``leader`` while the last renewal succeeded less than a TTL ago (by the local
    monotonic clock, from when it was sent); ``standby`` while it can read the lease and
    another replica holds it; ``none`` before the first poll, after a database error, and
    once stopped — with the reason.
    """

    def __init__(self, lease: SchedulerLease, renew_interval: float, *,
                 on_acquired: Callable[[int], None] | None = None,
                 on_lost: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lease = lease
        self.renew_interval = renew_interval
        self.ttl = lease.ttl.total_seconds()
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self.clock = clock
        self._lock = threading.Lock()
        self._role: SchedulerRole = "none"
        self._reason: str | None = "the lease has not been polled yet"
        self._epoch: int | None = None
        self._deadline = 0.0
        self._leader: str | None = None
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the daemon asks ---------------------------------------------------------------

    def status(self) -> SchedulerStatus:
        with self._lock:
            role = self._role
            if role == "leader" and self.clock() >= self._deadline:
                return SchedulerStatus("none", "lease lost: not renewed within its TTL",
                                       self.lease.holder, None, self._leader)
            return SchedulerStatus(role, self._reason, self.lease.holder,
                                   self._epoch if role == "leader" else None, self._leader)

    def leader_epoch(self) -> int | None:
        """The epoch to work under if this replica leads right now, else None."""
        with self._lock:
            if self._role == "leader" and self.clock() < self._deadline:
                return self._epoch
            return None

    def is_leader(self) -> bool:
        return self.leader_epoch() is not None

    def lost(self, reason: str) -> None:
        """A job found the lease gone (its commit was fenced): step down now."""
        self._step_down("none", reason if reason.startswith("lease lost")
                        else f"lease lost: {reason}")
        self.wake()

    def wake(self) -> None:
        """Poll now rather than at the next interval."""
        self._wakeup.set()

    # -- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop polling; a leader releases its lease (``release``) so a standby takes over
        at once."""
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        with self._lock:
            epoch = self._epoch if self._role == "leader" else None
            self._role, self._reason, self._epoch = "none", "stopped", None
        if release and epoch is not None:
            try:
                if self.lease.release(epoch):
                    log.info("scheduler lease released",
                             extra={"holder": self.lease.holder, "epoch": epoch})
            except Exception as exc:  # a shutdown never fails on this: the TTL still ends it
                log.warning("could not release the scheduler lease; it expires on its own",
                            extra={"holder": self.lease.holder, "error": str(exc)})
            if self.on_lost is not None:
                self.on_lost("released")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.tick()
            except Exception:  # a bug here must not end the thread: the lease would lapse
                log.exception("the scheduler lease keeper failed; it polls again")
                self._step_down("none", "lease lost: the lease keeper failed (see the log)")
                delay = min(self.renew_interval, 1.0)
            self._wakeup.wait(delay)
            self._wakeup.clear()

    def tick(self) -> float:
        """One renewal (as leader) or one attempt to acquire (otherwise); the seconds to wait
        before the next."""
        with self._lock:
            epoch = self._epoch if self._role == "leader" else None
        sent = self.clock()
        if epoch is not None:
            return self._renew(epoch, sent)
        return self._acquire(sent)

    def _renew(self, epoch: int, sent: float) -> float:
        try:
            renewed = self.lease.renew(epoch)
        except Exception as exc:
            self._step_down("none", f"lease lost: database error while renewing: "
                                    f"{_cause(exc)}")
            return min(self.renew_interval, 1.0)
        if not renewed:
            row = self._peek()
            by = f" by {row.holder} (epoch {row.epoch})" if row is not None else ""
            self._step_down("standby", f"lease lost: taken over{by}",
                            leader=row.holder if row is not None else None)
            return self.renew_interval
        with self._lock:
            if self._role == "leader" and self._epoch == epoch:
                self._deadline = sent + self.ttl
        return self.renew_interval

    def _acquire(self, sent: float) -> float:
        try:
            epoch = self.lease.try_acquire()
            row, now = (None, None) if epoch is not None else self.lease.current()
        except Exception as exc:
            with self._lock:
                self._role = "none"
                if not (self._reason or "").startswith("lease lost"):  # keep the first cause
                    self._reason = f"database unreachable: {_cause(exc)}"
            return min(self.renew_interval, 1.0)
        if epoch is not None:
            with self._lock:
                self._role, self._reason, self._epoch = "leader", None, epoch
                self._deadline = sent + self.ttl
                self._leader = self.lease.holder
            log.info("became the scheduler leader",
                     extra={"holder": self.lease.holder, "epoch": epoch})
            if self.on_acquired is not None:
                self.on_acquired(epoch)
            return self.renew_interval
        with self._lock:
            was = self._role
            self._role = "standby"
            self._leader = row.holder if row is not None else None
            if was == "none":
                self._reason = None
        if was != "standby" and row is not None:
            log.info("standing by", extra={"leader": row.holder, "epoch": row.epoch})
        if row is None or now is None:
            return self.renew_interval
        # sleep until the lease we saw would expire, not a whole interval past it
        return max(0.05, min(self.renew_interval, row.remaining(now) + 0.05))

    def _peek(self) -> LeaseRow | None:
        try:
            return self.lease.current()[0]
        except Exception:
            return None

    def _step_down(self, role: SchedulerRole, reason: str, leader: str | None = None) -> None:
        with self._lock:
            was_leader = self._role == "leader"
            self._role, self._reason = role, reason
            epoch, self._epoch = self._epoch, None
            self._deadline = 0.0
            if leader is not None:
                self._leader = leader
        if was_leader:
            log.warning("stepped down from scheduler leader",
                        extra={"holder": self.lease.holder, "epoch": epoch, "reason": reason})
            if self.on_lost is not None:
                self.on_lost(reason)


def _cause(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return (text_.splitlines()[0] if text_ else type(exc).__name__)[:300]
