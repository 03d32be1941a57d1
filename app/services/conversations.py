"""Storing conversations: the reader's turn before answering, the assistant's turn after.

Plain SQLAlchemy sessions from a factory; no Flask. Every public method opens and closes its own
short session, so a long-lived answer stream never holds a database connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Table,
    Text,
    Uuid,
    bindparam,
    column,
    delete,
    insert,
    or_,
    select,
    update,
    values,
)
from sqlalchemy.orm import Session

from app.models import Conversation, Feedback, Message, MessageStatus, WorkerHeartbeat, aware, utcnow
from app.services.errors import ErrorCode

# Answers left `streaming` without an owning worker (stored before workers had heartbeats) are
# taken for abandoned after this long, as before.
UNOWNED_STREAM_AGE = timedelta(minutes=10)

# Declarative classes type __table__ as a FromClause; a class with __tablename__ maps a Table.
CONVERSATIONS = cast(Table, Conversation.__table__)
MESSAGES = cast(Table, Message.__table__)


class ConversationNotFound(LookupError):
    """The reader referred to a conversation this service does not have."""


@dataclass(frozen=True)
class StoredMessage:
    """A message as the API shows it."""

    id: uuid.UUID
    role: str
    content: str
    sources: list[dict[str, Any]]
    status: str
    created_at: datetime
    mode: str = "general"
    feedback: dict[str, Any] | None = None  # the reader's vote on an answer: {"vote", "comment"}


@dataclass(frozen=True)
class OpenTurn:
    """A reader's question, stored, and the placeholder for the answer being produced."""

    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    assistant_message_id: uuid.UUID
    history: list[tuple[str, str]]  # (role, content) of earlier completed turns, oldest first


@dataclass
class TurnOutcome:
    """What became of an answer: stored on the assistant's message when the turn ends."""

    content: str
    status: MessageStatus
    sources: list[dict[str, Any]] = field(default_factory=list)
    grounded: bool | None = None
    error_code: str | None = None
    answerer: str | None = None
    retrieval_ms: int | None = None
    first_token_ms: int | None = None
    total_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ConversationStore:
    """Reads and writes conversations through short-lived sessions."""

    def __init__(self, session_factory: Callable[[], Session], history_turns: int = 10) -> None:
        self._session_factory = session_factory
        self._history_turns = history_turns

    def open_turn(
        self,
        conversation_id: uuid.UUID | None,
        message: str,
        mode: str,
        context: str | None,
        worker_id: str | None = None,
    ) -> OpenTurn:
        """Store the reader's message (creating the conversation if needed) before answering.

        The answer's placeholder row belongs to `worker_id` (whose heartbeat must already be
        stored). Raises `ConversationNotFound` for an unknown id, before anything is written.
        """
        # Core statements on the mapped tables, not ORM objects: the two writes of every answer
        # cost half the CPU that way (3.4 -> 1.7 ms on SQLite, bench/README.md "CPU per answer");
        # the ORM's unit of work buys nothing for three known rows. Ids and timestamps are set
        # here, so nothing needs reading back.
        now = utcnow()
        user_id, assistant_id = uuid.uuid4(), uuid.uuid4()
        with self._session_factory() as session, session.begin():
            connection = session.connection()
            if conversation_id is None:
                conversation_id = uuid.uuid4()
                connection.execute(
                    insert(CONVERSATIONS), {"id": conversation_id, "created_at": now, "updated_at": now}
                )
                history: list[tuple[str, str]] = []
            else:
                touched = connection.execute(
                    update(CONVERSATIONS).where(CONVERSATIONS.c.id == conversation_id).values(updated_at=now)
                ).rowcount
                if not touched:
                    raise ConversationNotFound(str(conversation_id))
                history = self._recent_history(session, conversation_id)
            turn = {"conversation_id": conversation_id, "mode": mode}
            connection.execute(
                insert(MESSAGES),
                [
                    {
                        **turn,
                        "id": user_id,
                        "role": "user",
                        "content": message,
                        "context": context,
                        "status": MessageStatus.COMPLETE.value,
                        "worker_id": None,
                        "created_at": now,
                    },
                    # The answer's row exists from the start, so a worker that dies mid-answer
                    # leaves a visible "streaming" turn that start-up marks interrupted, not a
                    # silent gap. It sorts after the question (history is ordered by creation time).
                    {
                        **turn,
                        "id": assistant_id,
                        "role": "assistant",
                        "content": "",
                        "context": None,
                        "status": MessageStatus.STREAMING.value,
                        "worker_id": worker_id,
                        "created_at": now + timedelta(microseconds=1),
                    },
                ],
            )
            return OpenTurn(conversation_id, user_id, assistant_id, history)

    def finish_turn(self, assistant_message_id: uuid.UUID, outcome: TurnOutcome) -> None:
        """Store how the answer ended: its text, sources, status and timings."""
        self.finish_turns([(assistant_message_id, outcome)])

    def finish_turns(self, outcomes: list[tuple[uuid.UUID, TurnOutcome]]) -> None:
        """Store how several answers ended, in one transaction (a worker stopping cuts them all)."""
        completed_at = utcnow()
        with self._session_factory() as session, session.begin():
            connection = session.connection()
            for assistant_message_id, outcome in outcomes:
                # An answer deleted meanwhile matches no row: nothing to keep.
                connection.execute(
                    update(MESSAGES)
                    .where(MESSAGES.c.id == assistant_message_id)
                    .values(
                        content=outcome.content,
                        status=outcome.status.value,
                        sources=outcome.sources,
                        grounded=outcome.grounded,
                        error_code=outcome.error_code,
                        answerer=outcome.answerer,
                        retrieval_ms=outcome.retrieval_ms,
                        first_token_ms=outcome.first_token_ms,
                        total_ms=outcome.total_ms,
                        prompt_tokens=outcome.prompt_tokens,
                        completion_tokens=outcome.completion_tokens,
                        completed_at=completed_at,
                    )
                )

    def save_partial_answers(self, texts: dict[uuid.UUID, str]) -> int:
        """Store the text streamed so far of answers still in progress; returns rows written.

        One transaction and, on PostgreSQL, one statement (UPDATE … FROM VALUES: one round trip,
        not one per row; SQLite is in-process and has no such syntax). An answer that has ended
        meanwhile is left alone: its final text is already stored and must not be overwritten.
        """
        if not texts:
            return 0
        with self._session_factory() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                saved = values(column("message_id", Uuid()), column("text", Text()), name="saved").data(
                    list(texts.items())
                )
                statement = (
                    update(Message)
                    .where(Message.id == saved.c.message_id)
                    .where(Message.status == MessageStatus.STREAMING.value)
                    .values(content=saved.c.text)
                    .execution_options(synchronize_session=False)
                )
                # Session.execute types its result as Result; a DML statement's is a CursorResult.
                return cast("CursorResult[Any]", session.execute(statement)).rowcount or 0
            each = (
                update(MESSAGES)
                .where(MESSAGES.c.id == bindparam("message_id"))
                .where(MESSAGES.c.status == MessageStatus.STREAMING.value)
                .values(content=bindparam("text"))
            )
            rows = [{"message_id": key, "text": text} for key, text in texts.items()]
            return session.connection().execute(each, rows).rowcount or 0

    def beat(self, worker_id: str, host: str, pid: int) -> None:
        """Record that this worker is alive now (creating its row, or recreating a swept one)."""
        now = utcnow()
        with self._session_factory() as session, session.begin():
            updated = cast(
                "CursorResult[Any]",
                session.execute(
                    update(WorkerHeartbeat).where(WorkerHeartbeat.id == worker_id).values(beat_at=now)
                ),
            ).rowcount
            if not updated:
                session.add(
                    WorkerHeartbeat(id=worker_id, host=host[:255], pid=pid, started_at=now, beat_at=now)
                )

    def forget_worker(self, worker_id: str) -> None:
        """A worker stopping cleanly: its row goes (answers it still owned are swept at once)."""
        with self._session_factory() as session, session.begin():
            session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == worker_id))

    def get_messages(self, conversation_id: uuid.UUID) -> list[StoredMessage]:
        """All turns of a conversation, oldest first; raises `ConversationNotFound`."""
        with self._session_factory() as session:
            if session.get(Conversation, conversation_id) is None:
                raise ConversationNotFound(str(conversation_id))
            rows = session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.created_at, Message.role.desc())
            ).all()
            votes = {
                message_id: {"vote": vote, "comment": comment}
                for message_id, vote, comment in session.execute(
                    select(Feedback.message_id, Feedback.vote, Feedback.comment)
                    .join(Message, Message.id == Feedback.message_id)
                    .where(Message.conversation_id == conversation_id)
                )
            }
            return [
                StoredMessage(
                    id=row.id,
                    role=row.role,
                    content=row.content,
                    sources=row.sources or [],
                    status=row.status,
                    created_at=aware(row.created_at),
                    mode=row.mode,
                    feedback=votes.get(row.id),
                )
                for row in rows
            ]

    def mark_abandoned_streams(self, stale_after: timedelta) -> int:
        """Mark interrupted the answers left `streaming` by workers that are gone; returns how many.

        A worker is gone when its heartbeat is older than `stale_after` (or was deleted). A live
        worker's answers are never touched, whatever their age, and on whichever instance. The
        text saved so far stays. Stale heartbeats are deleted in the same transaction.
        """
        now = utcnow()
        live_workers = select(WorkerHeartbeat.id).where(WorkerHeartbeat.beat_at >= now - stale_after)
        with self._session_factory() as session, session.begin():
            result = session.execute(
                update(Message)
                .where(Message.status == MessageStatus.STREAMING.value)
                .where(
                    or_(
                        # (NOT IN an empty set is true even for NULL: hence the first test.)
                        Message.worker_id.is_not(None) & Message.worker_id.not_in(live_workers),
                        Message.worker_id.is_(None) & (Message.created_at < now - UNOWNED_STREAM_AGE),
                    )
                )
                .values(
                    status=MessageStatus.INTERRUPTED.value,
                    error_code=ErrorCode.WORKER_STOPPED,
                    completed_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - stale_after))
            return cast("CursorResult[Any]", result).rowcount or 0

    def ping(self) -> None:
        """Run a trivial query; raises when the database is unreachable."""
        with self._session_factory() as session:
            session.execute(select(1))

    def _recent_history(self, session: Session, conversation_id: uuid.UUID) -> list[tuple[str, str]]:
        rows = session.execute(
            select(Message.role, Message.content)
            .where(Message.conversation_id == conversation_id)
            .where(Message.status != MessageStatus.STREAMING.value)
            .where(Message.content != "")
            .order_by(Message.created_at.desc())
            .limit(self._history_turns * 2)
        ).all()
        return [(role, content) for role, content in reversed(rows)]
