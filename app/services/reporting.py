"""The book owner's report: what readers asked over a period, and what the book did not answer well.

It only reads the conversation tables (never the index, never Gemini, never a migration), so it
runs from anywhere the database is reachable, such as a laptop against Neon. Everything is
about the turns *asked* in the period [since, until), in UTC:

- volume: conversations, questions by mode, answers by status and by answerer, the share
  replayed from the answer cache;
- gaps: questions the book did not cover (`grounded` false), rewordings grouped as one by their
  analysed terms (the keyword index's analyzer: case, punctuation, stop words, stems);
- weak answers: down-voted answers with their question, comment and cited sections;
- the pages and sections cited most, answer latencies (p50/p95), and errors by code.

No Flask here: `build_report` takes a session factory; `report_text.render_text` formats the result.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, distinct, func, select
from sqlalchemy.orm import Session, aliased

from app.models import Conversation, Feedback, Message, MessageStatus, aware
from app.services.answer_cache import CACHE_ANSWERER, normalise_question
from app.services.errors import GEMINI_ERRORS
from app.services.retrieval.sparse import Analyzer

LIST_LIMIT = 20  # rows per list (gaps, weak answers, cited pages and sections)

_PERIOD = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_period(text: str) -> timedelta:
    """`30m`, `24h`, `7d` or `2w` as a timedelta; ValueError otherwise."""
    match = _PERIOD.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a period like 30m, 24h, 7d or 2w")
    return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})


@dataclass
class Report:
    """The report as plain data; `as_dict()` is the JSON document."""

    since: datetime
    until: datetime
    period: str
    volume: dict[str, Any]
    gaps: list[dict[str, Any]]
    weak_answers: list[dict[str, Any]]
    weak_sections: list[dict[str, Any]]
    cited_pages: list[dict[str, Any]]
    cited_sections: list[dict[str, Any]]
    latency: dict[str, Any]
    errors: list[dict[str, Any]]
    gemini_errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, keys in reading order."""
        return {
            "period": {"since": _iso(self.since), "until": _iso(self.until), "label": self.period},
            "volume": self.volume,
            "gaps": self.gaps,
            "weak_answers": {"answers": self.weak_answers, "sections": self.weak_sections},
            "most_cited": {"pages": self.cited_pages, "sections": self.cited_sections},
            "latency": self.latency,
            "errors": {"gemini": self.gemini_errors, "all": self.errors},
        }


def build_report(
    session_factory: Callable[[], Session], since: datetime, until: datetime, period: str = ""
) -> Report:
    """Read the turns asked in [since, until) and summarise them (a handful of read queries)."""
    with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One snapshot for every query (the counts agree with each other while readers chat),
            # and read-only: the report cannot write, whatever happens.
            session.connection(
                execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            )
        in_period = and_(Message.created_at >= since, Message.created_at < until)
        answers = and_(Message.role == "assistant", in_period)
        return Report(
            since=since,
            until=until,
            period=period,
            volume=_volume(session, since, until, in_period, answers),
            gaps=_gaps(session, answers),
            **_weak_answers(session, answers),
            **_most_cited(session, answers),
            latency=_latency(session, answers),
            **_errors(session, answers),
        )


# --- volume ------------------------------------------------------------------------------------
def _volume(
    session: Session,
    since: datetime,
    until: datetime,
    in_period: ColumnElement[bool],
    answers: ColumnElement[bool],
) -> dict[str, Any]:
    questions = and_(Message.role == "user", in_period)
    by_mode = dict(
        session.execute(select(Message.mode, func.count()).where(questions).group_by(Message.mode)).all()
    )
    by_status = dict(
        session.execute(select(Message.status, func.count()).where(answers).group_by(Message.status)).all()
    )
    by_answerer = {
        name or "(none)": count
        for name, count in session.execute(
            select(Message.answerer, func.count()).where(answers).group_by(Message.answerer)
        ).all()
    }
    total_answers = sum(by_status.values())
    not_covered = session.scalar(select(func.count()).where(answers, Message.grounded.is_(False))) or 0
    return {
        "conversations": session.scalar(
            select(func.count(distinct(Message.conversation_id))).where(questions)
        )
        or 0,
        "new_conversations": session.scalar(
            select(func.count()).where(Conversation.created_at >= since, Conversation.created_at < until)
        )
        or 0,
        "questions": sum(by_mode.values()),
        "questions_by_mode": _sorted_counts(by_mode, first=("general", "selection")),
        "answers": total_answers,
        "answers_by_status": _sorted_counts(
            by_status,
            first=(MessageStatus.COMPLETE.value, MessageStatus.INTERRUPTED.value, MessageStatus.FAILED.value),
        ),
        "answers_by_answerer": _sorted_counts(by_answerer),
        "answered_from_cache": (
            round(by_answerer.get(CACHE_ANSWERER, 0) / total_answers, 3) if total_answers else 0.0
        ),
        "not_covered": not_covered,
    }


# --- gaps --------------------------------------------------------------------------------------
_analyzer = Analyzer()


def question_key(text: str) -> str:
    """What rewordings of one question share: their analysed terms, as a sorted set.

    "How do I deploy to Vercel?", "deploying to vercel" and "Vercel deployment" all give
    "deploy vercel": case, punctuation, stop words and word endings do not count, nor order.
    """
    terms = sorted(set(_analyzer.terms(text)))
    if terms:
        return " ".join(terms)
    return normalise_question(text)  # only stop words: compare the text itself


def _question_of(answer: type[Message]) -> Any:
    """The reader's message an answer replies to: the latest user turn before it (indexed)."""
    user = aliased(Message)
    return (
        select(user.content)
        .where(
            user.conversation_id == answer.conversation_id,
            user.role == "user",
            user.created_at <= answer.created_at,
        )
        .order_by(user.created_at.desc())
        .limit(1)
        .correlate(answer)
        .scalar_subquery()
    )


def _gaps(session: Session, answers: ColumnElement[bool]) -> list[dict[str, Any]]:
    rows = session.execute(
        select(_question_of(Message), Message.created_at)
        .where(answers, Message.grounded.is_(False))
        .order_by(Message.created_at)
    ).all()
    groups: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for question, asked in rows:
        if question:
            groups[question_key(question)].append((question.strip(), aware(asked)))
    gaps: list[dict[str, Any]] = []
    for key, asked in groups.items():
        wordings = Counter(" ".join(text.split()) for text, _ in asked)
        latest = {" ".join(text.split()): when for text, when in asked}  # asked is oldest first
        example = max(wordings, key=lambda text: (wordings[text], latest[text]))
        gaps.append(
            {
                "question": example,
                "count": len(asked),
                "wordings": len(wordings),
                "last_asked": _iso(max(when for _, when in asked)),
                "terms": key,
            }
        )
    gaps.sort(key=lambda gap: gap["last_asked"], reverse=True)  # ties: the latest asked first
    gaps.sort(key=lambda gap: -gap["count"])
    return gaps[:LIST_LIMIT]


# --- weak answers --------------------------------------------------------------------------------
def _weak_answers(session: Session, answers: ColumnElement[bool]) -> dict[str, Any]:
    rows = session.execute(
        select(
            Message.id,
            Message.conversation_id,
            Message.created_at,
            Message.answerer,
            Message.content,
            Message.sources,
            Feedback.comment,
            _question_of(Message),
        )
        .join(Feedback, Feedback.message_id == Message.id)
        .where(answers, Feedback.vote == "down")
        .order_by(Message.created_at.desc())
    ).all()
    sections: Counter[tuple[str, str]] = Counter()
    urls: dict[tuple[str, str], str | None] = {}
    listed = []
    for message_id, conversation_id, created_at, answerer, content, sources, comment, question in rows:
        cited = _sections(sources)
        for section in cited:
            key = (section["file"], section["heading"])
            sections[key] += 1
            urls.setdefault(key, section["url"])
        listed.append(
            {
                "message_id": str(message_id),
                "conversation_id": str(conversation_id),
                "answered_at": _iso(aware(created_at)),
                "answerer": answerer,
                "question": question,
                "answer": excerpt(content, 300),
                "comment": comment,
                "sections": cited,
            }
        )
    return {
        "weak_answers": listed[:LIST_LIMIT],
        "weak_sections": [
            {"file": file, "heading": heading, "url": urls[(file, heading)], "count": count}
            for (file, heading), count in _most_common(sections)
        ],
    }


# --- what readers read -------------------------------------------------------------------------
def _most_cited(session: Session, answers: ColumnElement[bool]) -> dict[str, Any]:
    pages: Counter[str] = Counter()
    sections: Counter[tuple[str, str]] = Counter()
    page_info: dict[str, dict[str, Any]] = {}
    section_urls: dict[tuple[str, str], str | None] = {}
    result = session.execute(
        select(Message.sources).where(answers, Message.sources.is_not(None)).execution_options(yield_per=1000)
    )
    for (sources,) in result:
        cited = _sections(sources)
        for section in cited:
            key = (section["file"], section["heading"])
            sections[key] += 1
            section_urls.setdefault(key, section["url"])
        for section in {s["file"]: s for s in cited}.values():  # a page counts once per answer
            pages[section["file"]] += 1
            page_url = (section["url"] or "").split("#", 1)[0] or None
            page_info.setdefault(section["file"], {"title": section["title"], "url": page_url})
    return {
        "cited_pages": [
            {"file": file, **page_info[file], "count": count} for file, count in _most_common(pages)
        ],
        "cited_sections": [
            {"file": file, "heading": heading, "url": section_urls[(file, heading)], "count": count}
            for (file, heading), count in _most_common(sections)
        ],
    }


def _sections(sources: Any) -> list[dict[str, Any]]:
    """The cited sections of a stored `sources` list, each once, in order."""
    seen: set[tuple[str, str]] = set()
    cited = []
    for source in sources or []:
        if not isinstance(source, dict) or not source.get("file"):
            continue
        key = (str(source["file"]), str(source.get("heading") or ""))
        if key in seen:
            continue
        seen.add(key)
        cited.append(
            {"file": key[0], "heading": key[1], "title": source.get("title"), "url": source.get("url")}
        )
    return cited


# --- latency and errors --------------------------------------------------------------------------
def answerer_kind(name: str | None) -> str:
    """gemini, offline or cache (a model name is a detail of `answers_by_answerer`)."""
    return (name or "unknown").split(":", 1)[0]


def _latency(session: Session, answers: ColumnElement[bool]) -> dict[str, Any]:
    """p50/p95 of the time to the first token and to the end, for complete answers."""
    first: dict[str, list[int]] = defaultdict(list)
    total: dict[str, list[int]] = defaultdict(list)
    rows = session.execute(
        select(Message.answerer, Message.first_token_ms, Message.total_ms).where(
            answers, Message.status == MessageStatus.COMPLETE.value
        )
    )
    for answerer, first_ms, total_ms in rows:
        for kind in ("all", answerer_kind(answerer)):
            if first_ms is not None:
                first[kind].append(first_ms)
            if total_ms is not None:
                total[kind].append(total_ms)
    kinds = ["all"] + sorted((set(first) | set(total)) - {"all"})
    return {
        kind: {
            "answers": len(total[kind]),
            "first_token_ms": _percentiles(first[kind]),
            "total_ms": _percentiles(total[kind]),
        }
        for kind in kinds
    }


def _percentiles(values: list[int]) -> dict[str, int | None]:
    if not values:
        return {"p50": None, "p95": None}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49]), "p95": round(cuts[94])}


def _errors(session: Session, answers: ColumnElement[bool]) -> dict[str, Any]:
    rows = session.execute(
        select(Message.error_code, Message.answerer, func.count())
        .where(answers, Message.error_code.is_not(None))
        .group_by(Message.error_code, Message.answerer)
    ).all()
    errors: list[dict[str, Any]] = [
        {"code": code, "answerer": answerer, "count": count} for code, answerer, count in rows
    ]
    errors.sort(key=lambda row: (-row["count"], row["code"]))
    gemini: Counter[str] = Counter()
    for row in errors:
        # The offline answerer never fails on its own: an error code on its answer is the Gemini
        # failure it stood in for (GEMINI_FALLBACK). Only the codes the Gemini provider gives
        # count: the reader leaving, a worker stopping or the index failing are not Gemini's.
        if answerer_kind(row["answerer"]) in ("gemini", "offline") and row["code"] in GEMINI_ERRORS:
            gemini[row["code"]] += row["count"]
    return {"errors": errors, "gemini_errors": dict(_most_common(gemini))}


def _sorted_counts(counts: dict[str, int], first: tuple[str, ...] = ()) -> dict[str, int]:
    """Named keys first (always present, even at 0), then the rest, most frequent first."""
    ordered = {name: counts.get(name, 0) for name in first}
    for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        ordered.setdefault(name, count)
    return ordered


def _most_common(counter: Counter[Any]) -> list[tuple[Any, int]]:
    """Most frequent first, ties in a stable order, at most LIST_LIMIT."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:LIST_LIMIT]


def _iso(moment: datetime) -> str:
    return aware(moment).astimezone(UTC).isoformat(timespec="seconds")


def excerpt(text: str, limit: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
