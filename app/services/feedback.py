"""Readers' votes on answers: one vote per answer, changeable; no Flask in here.

Only the assistant's messages can be voted on (a vote judges an answer, not a question), whatever
their status: a reader may well want to say that an interrupted or failed answer was unhelpful.
A new vote replaces the previous vote *and* comment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Feedback, Message, aware, utcnow


class MessageNotFound(LookupError):
    """No message with this id."""


class NotAnAnswer(ValueError):
    """The message is the reader's own, not an answer."""


@dataclass(frozen=True)
class StoredVote:
    """A vote as stored; `created` is True when this call made the first vote on the message."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    vote: str
    comment: str | None
    created_at: datetime
    updated_at: datetime
    created: bool

    def as_dict(self) -> dict[str, object]:
        """The JSON body of POST /api/feedback."""
        return {
            "message_id": str(self.message_id),
            "conversation_id": str(self.conversation_id),
            "vote": self.vote,
            "comment": self.comment,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class FeedbackStore:
    """Records votes through short-lived sessions."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory

    def vote(self, message_id: uuid.UUID, vote: str, comment: str | None = None) -> StoredVote:
        """Record (or change) the vote on an answer.

        Raises `MessageNotFound` or `NotAnAnswer`. Two first votes at the same moment are both
        kept in order: the loser of the insert race updates the winner's row.
        """
        if vote not in ("up", "down"):
            raise ValueError("vote must be 'up' or 'down'")
        comment = comment or None
        for attempt in range(2):
            try:
                return self._vote_once(message_id, vote, comment)
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _vote_once(self, message_id: uuid.UUID, vote: str, comment: str | None) -> StoredVote:
        with self._session_factory() as session, session.begin():
            message = session.get(Message, message_id)
            if message is None:
                raise MessageNotFound(str(message_id))
            if message.role != "assistant":
                raise NotAnAnswer(str(message_id))
            row = session.get(Feedback, message_id)
            created = row is None
            now = utcnow()
            if row is None:
                row = Feedback(
                    message_id=message_id, vote=vote, comment=comment, created_at=now, updated_at=now
                )
                session.add(row)
            else:
                row.vote, row.comment, row.updated_at = vote, comment, now
            session.flush()
            return StoredVote(
                message_id=message_id,
                conversation_id=message.conversation_id,
                vote=row.vote,
                comment=row.comment,
                created_at=aware(row.created_at),
                updated_at=aware(row.updated_at),
                created=created,
            )
