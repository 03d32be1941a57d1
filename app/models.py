"""The persisted conversation: a `Conversation` holds ordered `Message` turns.

Plain SQLAlchemy (no Flask): the services use these models, and Flask-SQLAlchemy is bound to the
same declarative base in app/extensions.py, so `db.metadata` (and Alembic's target) is
`Base.metadata`.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base for the models (typed SQLAlchemy 2.0 style)."""


def utcnow() -> datetime:
    """Timezone-aware now, so SQLite and PostgreSQL round-trip the same value."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A stored time as UTC: SQLite returns naive datetimes, and every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class MessageStatus(enum.StrEnum):
    """Where a turn stands: a user turn is always complete once stored."""

    STREAMING = "streaming"  # the answer is being produced
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"  # the reader went away, or the worker stopped mid-answer
    FAILED = "failed"  # the answer could not be produced


class Conversation(Base):
    """One reader's conversation with the book."""

    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The last activity: set when a message is added (ConversationStore.open_turn). Indexed,
    # because retention deletes by it.
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.created_at", cascade="all, delete-orphan"
    )


class Message(Base):
    """One turn: the reader's question or the assistant's answer, with how it went."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        Index("ix_messages_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # "user" | "assistant"
    content: Mapped[str] = mapped_column(Text, default="")
    mode: Mapped[str] = mapped_column(String(16), default="general")  # "general" | "selection"
    context: Mapped[str | None] = mapped_column(Text)  # the passage the reader selected
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.COMPLETE.value)
    error_code: Mapped[str | None] = mapped_column(String(64))
    grounded: Mapped[bool | None] = mapped_column()
    answerer: Mapped[str | None] = mapped_column(String(64))  # "offline" or the Gemini model
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retrieval_ms: Mapped[int | None] = mapped_column(Integer)
    first_token_ms: Mapped[int | None] = mapped_column(Integer)
    total_ms: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    # The worker producing the answer while it is `streaming` (a WorkerHeartbeat id; no foreign
    # key: heartbeats of stopped workers are deleted, the answers stay).
    worker_id: Mapped[str | None] = mapped_column(String(32))

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Feedback(Base):
    """A reader's vote on one answer: one per message, replaced when the reader votes again."""

    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint("vote IN ('up', 'down')", name="ck_feedback_vote"),)

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    vote: Mapped[str] = mapped_column(String(8))  # "up" | "down"
    comment: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class RetentionState(Base):
    """One row (id 1): when the service last purged old conversations, and how many went.

    Every worker of every instance reads it to decide whether a purge is due, so a Space that
    sleeps and wakes purges at most once a day, whichever worker wakes first.
    """

    __tablename__ = "retention_state"
    __table_args__ = (CheckConstraint("id = 1", name="ck_retention_state_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1, autoincrement=False)
    last_purge_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_purge_conversations: Mapped[int | None] = mapped_column(Integer)


class WorkerHeartbeat(Base):
    """A serving process that may own answers in progress, and when it last said it was alive.

    An answer left `streaming` belongs to its worker (`Message.worker_id`); a sweep marks it
    interrupted only once that worker's beat is stale, so a live stream on another instance is
    never taken for a dead one, however old it is.
    """

    __tablename__ = "worker_heartbeats"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random per process start
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
