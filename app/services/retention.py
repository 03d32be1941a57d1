"""Keeping less: deleting old conversations (with their messages and votes), on request or daily.

- A conversation's age is its last activity, `conversations.updated_at` (set whenever a message
  is added), so a conversation a reader came back to yesterday is young whatever its first date.
- Deletes go in batches, one short transaction each: a live database never waits long on them.
- With RETENTION_DAYS set, `RetentionScheduler` purges by itself when the last purge, recorded in
  the `retention_state` row, is over a day old. The check is opportunistic (a worker's start,
  then at most hourly from requests) because a sleeping Space has no clock to rely on; one worker
  across all instances claims the day's purge under a lock (an advisory lock on PostgreSQL, the
  write lock on SQLite) that is never waited for.

No Flask here.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, Table, delete, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.models import Conversation, Feedback, Message, RetentionState, aware, utcnow
from app.services.conversations import ConversationNotFound

log = logging.getLogger(__name__)

BATCH_SIZE = 500  # conversations per transaction: a few thousand rows, milliseconds of locks
PURGE_EVERY = timedelta(days=1)  # the automatic purge runs at most this often, across instances
CHECK_EVERY_SECONDS = 3600.0  # a worker looks at the recorded last purge at most this often
# Any constant works: it names "the retention purge" among the database's advisory locks.
ADVISORY_LOCK_KEY = 0x7265_7465  # "rete"


@dataclass(frozen=True)
class PurgeResult:
    """How many rows a purge deleted (or, in a dry run, would delete)."""

    conversations: int = 0
    messages: int = 0
    feedback: int = 0
    dry_run: bool = False

    def __add__(self, other: PurgeResult) -> PurgeResult:
        return PurgeResult(
            self.conversations + other.conversations,
            self.messages + other.messages,
            self.feedback + other.feedback,
            self.dry_run or other.dry_run,
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready counts."""
        return asdict(self)


class ConversationPurger:
    """Deletes conversations with their messages and votes, through short-lived sessions."""

    def __init__(self, session_factory: Callable[[], Session], batch_size: int = BATCH_SIZE) -> None:
        self._session_factory = session_factory
        self._batch_size = batch_size

    def purge_inactive_since(self, cutoff: datetime, *, dry_run: bool = False) -> PurgeResult:
        """Delete every conversation whose last activity is before `cutoff`, batch by batch.

        A dry run counts what would go and changes nothing.
        """
        if dry_run:
            with self._session_factory() as session:
                return self._count(
                    session, select(Conversation.id).where(Conversation.updated_at < cutoff), dry_run=True
                )
        total = PurgeResult()
        while True:
            with self._session_factory() as session, session.begin():
                query = (
                    select(Conversation.id)
                    .where(Conversation.updated_at < cutoff)
                    .order_by(Conversation.updated_at)
                    .limit(self._batch_size)
                )
                if session.get_bind().dialect.name == "postgresql":
                    # A conversation a reader is writing to right now is left for the next batch.
                    query = query.with_for_update(skip_locked=True)
                ids = list(session.scalars(query))
                if not ids:
                    return total
                total += self._delete(session, ids, cutoff)
            if len(ids) < self._batch_size:
                return total

    def delete_conversation(self, conversation_id: uuid.UUID, *, dry_run: bool = False) -> PurgeResult:
        """Delete one conversation (a reader's request); raises `ConversationNotFound`."""
        with self._session_factory() as session, session.begin():
            if session.get(Conversation, conversation_id) is None:
                raise ConversationNotFound(str(conversation_id))
            if dry_run:
                return self._count(session, [conversation_id], dry_run=True)
            return self._delete(session, [conversation_id], cutoff=None)

    def _count(
        self, session: Session, ids: Iterable[uuid.UUID] | Select[uuid.UUID], *, dry_run: bool
    ) -> PurgeResult:
        conversations = session.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.id.in_(ids))
        )
        messages = session.scalar(
            select(func.count()).select_from(Message).where(Message.conversation_id.in_(ids))
        )
        votes = session.scalar(
            select(func.count())
            .select_from(Feedback)
            .join(Message, Message.id == Feedback.message_id)
            .where(Message.conversation_id.in_(ids))
        )
        return PurgeResult(conversations or 0, messages or 0, votes or 0, dry_run)

    def _delete(self, session: Session, ids: list[uuid.UUID], cutoff: datetime | None) -> PurgeResult:
        if cutoff is not None:
            # A reader may have come back since the batch was chosen (SQLite cannot skip locked
            # rows): keep those conversations.
            ids = list(
                session.scalars(
                    select(Conversation.id)
                    .where(Conversation.id.in_(ids))
                    .where(Conversation.updated_at < cutoff)
                )
            )
            if not ids:
                return PurgeResult()
        # Explicit deletes, children first: the counts are exact and nothing relies on SQLite's
        # foreign-key pragma being on for cascades.
        message_ids = select(Message.id).where(Message.conversation_id.in_(ids))
        plain = {"synchronize_session": False}  # nothing of these rows is loaded in the session
        # Session.execute types its result as Result; a DML statement's is a CursorResult.
        votes = cast(
            "CursorResult[Any]",
            session.execute(
                delete(Feedback).where(Feedback.message_id.in_(message_ids)), execution_options=plain
            ),
        ).rowcount
        messages = cast(
            "CursorResult[Any]",
            session.execute(delete(Message).where(Message.conversation_id.in_(ids)), execution_options=plain),
        ).rowcount
        conversations = cast(
            "CursorResult[Any]",
            session.execute(delete(Conversation).where(Conversation.id.in_(ids)), execution_options=plain),
        ).rowcount
        return PurgeResult(conversations or 0, messages or 0, votes or 0)


class RetentionScheduler:
    """The automatic purge: at most once a day across instances, checked opportunistically."""

    def __init__(
        self,
        engine: Engine,
        retention_days: int,
        *,
        purge_every: timedelta = PURGE_EVERY,
        check_every_seconds: float = CHECK_EVERY_SECONDS,
    ) -> None:
        self._engine = engine
        self.retention = timedelta(days=retention_days)
        self._purge_every = purge_every
        self._check_every = check_every_seconds
        self._purger = ConversationPurger(sessionmaker(bind=engine, expire_on_commit=False))
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._thread: threading.Thread | None = None

    def maybe_start(self) -> str | None:
        """Check in the background whether a purge is due, unless checked within the hour.

        Cheap and non-blocking: safe to call on every request.
        """
        now = time.monotonic()
        checked_at = self._checked_at
        if checked_at is not None and now - checked_at < self._check_every:
            return None  # the common case, every request: no lock taken
        with self._lock:
            if self._checked_at is not None and now - self._checked_at < self._check_every:
                return None
            if self._thread is not None and self._thread.is_alive():
                return None
            self._checked_at = now
            self._thread = threading.Thread(target=self._run_quietly, name="retention", daemon=True)
            self._thread.start()
        return f"checking in the background (keep {self.retention.days} days)"

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background check to end (tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def run_if_due(self) -> PurgeResult | None:
        """Purge now if this worker claims the day's purge; None when not due or claimed elsewhere."""
        now = utcnow()
        if not self._claim(now):
            return None
        result = self._purger.purge_inactive_since(now - self.retention)
        with self._engine.begin() as conn:
            conn.execute(
                update(RetentionState)
                .where(RetentionState.id == 1)
                .values(last_purge_conversations=result.conversations)
            )
        log.info(
            "retention: deleted %d conversations (%d messages, %d votes) inactive for %d days",
            result.conversations,
            result.messages,
            result.feedback,
            self.retention.days,
        )
        return result

    def _run_quietly(self) -> None:
        # A database that is down now is tried again at the next check, never raised to a request.
        try:
            self.run_if_due()
        except SQLAlchemyError as exc:
            log.warning("retention: purge skipped: %s", type(exc).__name__)

    def _claim(self, now: datetime) -> bool:
        """Record `now` as the last purge if the recorded one is old enough, under a lock never
        waited for: one worker wins; the others see the lock taken, or the fresh date."""
        with self._engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                return self._claim_sqlite(conn, now)
            with conn.begin():
                # Transaction-scoped, so it also holds behind a transaction-mode pooler (Neon).
                if not conn.scalar(select(func.pg_try_advisory_xact_lock(ADVISORY_LOCK_KEY))):
                    return False
                return self._record_if_due(conn, now)

    def _claim_sqlite(self, conn: Connection, now: datetime) -> bool:
        patience = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()  # the engine's (app/database.py)
        assert patience is not None  # the pragma always answers with its value
        conn.exec_driver_sql("PRAGMA busy_timeout=0")  # try the write lock, never queue for it
        try:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except OperationalError:  # "database is locked": another worker is writing
                conn.rollback()
                return False
            claimed = self._record_if_due(conn, now)
            conn.commit()
            return claimed
        finally:
            conn.rollback()
            conn.exec_driver_sql(f"PRAGMA busy_timeout={int(patience)}")
            conn.commit()

    def _record_if_due(self, conn: Connection, now: datetime) -> bool:
        last = conn.execute(select(RetentionState.last_purge_at).where(RetentionState.id == 1)).first()
        if last is None:  # the migration inserts the row; recreate it if someone deleted it
            # Declarative classes type __table__ as a FromClause; a class with __tablename__ maps a Table.
            conn.execute(cast(Table, RetentionState.__table__).insert().values(id=1, last_purge_at=now))
            return True
        if last[0] is not None and aware(last[0]) > now - self._purge_every:
            return False
        conn.execute(update(RetentionState).where(RetentionState.id == 1).values(last_purge_at=now))
        return True
