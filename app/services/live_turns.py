"""Answers in progress in this worker: saved as they stream, owned through a heartbeat, and cut
cleanly when the worker stops.

Three promises, kept by one background thread per worker process:

- **Saved as they stream.** Every `CHECKPOINT_SECONDS` the text streamed so far of every live
  answer is written in one transaction (not per token), so even `kill -9` loses at most that much.
- **Owned, not aged.** Each worker stores a heartbeat row every `BEAT_SECONDS`; an answer row in
  `streaming` names its worker. A sweep (at start-up and every `SWEEP_SECONDS`, in every worker of
  every instance) marks interrupted only the answers of workers whose heartbeat is older than
  `STALE_AFTER`, so a live stream on another instance is never taken for a dead one. Clocks of
  instances sharing one database are assumed within a few seconds of each other (NTP). A worker
  with no answer for `IDLE_AFTER_SECONDS` stops beating and sweeping (it owns nothing), so an
  idle service lets Neon's compute suspend; its next answer beats before its row is written.
- **Cut before the kill.** When the worker starts stopping (SIGTERM, a recycle), live answers go
  on, and most finish. At the graceful timeout minus `SHUTDOWN_MARGIN_SECONDS` those still
  running are stored as `interrupted` (`shutdown`) with the text streamed so far, and each reader
  gets a note, an `error` event and `done`, without waiting for the answer's next piece.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.models import MessageStatus
from app.services.conversations import ConversationStore, TurnOutcome
from app.services.errors import ErrorCode
from app.services.observer import NULL_OBSERVER, Observer

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 3.0
BEAT_SECONDS = 3.0
# Several missed beats: a worker busy with 200 streams, or waiting for a pooled connection, is
# late by a second or two, not by twenty.
STALE_AFTER = timedelta(seconds=20)
SWEEP_SECONDS = 10.0
IDLE_AFTER_SECONDS = 60.0
# Storing the cut answers and sending the readers their last events takes well under a second.
SHUTDOWN_MARGIN_SECONDS = 2.0
_TICK_SECONDS = 0.25  # how soon the thread notices that the worker is stopping


class TurnState(StrEnum):
    """Where a turn's recorder is (docs/getting-started/design-notes.md draws it). LIVE: streaming,
    checkpointed, may be cut. SEALED: ending on its own (its last events follow), no cut from now
    on. FINISHED: stored by its stream, from SEALED, or from LIVE when the reader left or the
    stream failed. CUT: stored as interrupted by the stopping worker; its stream sends nothing more."""

    LIVE = "live"
    SEALED = "sealed"
    FINISHED = "finished"
    CUT = "cut"


class TurnRecorder:
    """One answer in progress: the text streamed so far, and whether the worker cut it.

    The answer's stream appends pieces before sending them, so the stored text always holds at
    least what the reader was sent. Thread-safe: the stream, the checkpoint thread and the
    shutdown cut all use it.
    """

    def __init__(
        self, registry: LiveTurns, message_id: uuid.UUID, outcome: TurnOutcome, started: float
    ) -> None:
        self.message_id = message_id
        self._registry = registry
        self._outcome = outcome  # the stream's own outcome, filled in as it goes
        self._started = started
        self._lock = threading.Lock()
        self._pieces: list[str] = []
        self._saved_pieces = 0
        self._state = TurnState.LIVE
        self._closing_taken = False
        self._listeners: list[Callable[[], None]] = []
        self.closing_events: Callable[[], list[dict[str, Any]]] = list

    @property
    def pieces(self) -> list[str]:
        """The pieces recorded so far (a copy)."""
        with self._lock:
            return list(self._pieces)

    def append(self, piece: str) -> bool:
        """Record a piece about to be sent; False once the turn was cut (send nothing more)."""
        with self._lock:
            if self._state is TurnState.CUT:
                return False
            self._pieces.append(piece)
            return True

    def seal(self) -> bool:
        """The stream is ending on its own: no cut from now on. False if it was cut already."""
        with self._lock:
            if self._state is TurnState.CUT:
                return False
            self._state = TurnState.SEALED
            return True

    def is_set(self) -> bool:
        """Whether the worker cut this turn (it is stored as interrupted)."""
        return self._state is TurnState.CUT

    def add_listener(self, wake: Callable[[], None]) -> None:
        """Call `wake` (from the cutting thread) when the turn is cut."""
        with self._lock:
            if self._state is not TurnState.CUT:
                self._listeners.append(wake)
                return
        wake()

    def take_closing_events(self) -> list[dict[str, Any]] | None:
        """The events that end a cut turn, to whoever asks first; None to later askers."""
        with self._lock:
            if self._closing_taken:
                return None
            self._closing_taken = True
        return self.closing_events()

    def finish(self, outcome: TurnOutcome) -> bool:
        """Store how the turn ended; False (nothing stored) if the shutdown cut stored it already."""
        with self._lock:
            if self._state is TurnState.CUT:
                return False
            self._state = TurnState.FINISHED
        self._registry.finished(self, outcome)
        return True

    # --- for the registry --------------------------------------------------------------------
    def _unsaved(self) -> tuple[str, int] | None:
        # The text and how many pieces it holds, when it grew since the last checkpoint.
        with self._lock:
            if self._state is not TurnState.LIVE or len(self._pieces) == self._saved_pieces:
                return None
            return "".join(self._pieces), len(self._pieces)

    def _mark_saved(self, pieces: int) -> None:
        with self._lock:
            self._saved_pieces = max(self._saved_pieces, pieces)

    def _cut(self) -> TurnOutcome | None:
        with self._lock:
            if self._state is not TurnState.LIVE:
                return None
            self._state = TurnState.CUT
            text = "".join(self._pieces)
        return dataclasses.replace(
            self._outcome,
            content=text,
            status=MessageStatus.INTERRUPTED,
            error_code=ErrorCode.SHUTDOWN,
            total_ms=int((time.perf_counter() - self._started) * 1000),
        )

    def _wake(self) -> None:
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for wake in listeners:
            try:
                wake()
            except Exception:
                log.exception("could not wake a cut stream")


class LiveTurns:
    """This worker's answers in progress, its heartbeat, and the sweep of dead workers' answers."""

    def __init__(
        self,
        store: ConversationStore,
        *,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        beat_seconds: float = BEAT_SECONDS,
        stale_after: timedelta = STALE_AFTER,
        sweep_seconds: float = SWEEP_SECONDS,
        observer: Observer | None = None,
    ) -> None:
        self._store = store
        self._observer = observer or NULL_OBSERVER
        self._checkpoint_seconds = checkpoint_seconds
        self._beat_seconds = beat_seconds
        self._stale_after = stale_after
        self._sweep_seconds = sweep_seconds
        self._lock = threading.Lock()
        self._live: dict[uuid.UUID, TurnRecorder] = {}
        self._unstored: dict[uuid.UUID, TurnOutcome] = {}  # final outcomes a failed write left behind
        self._worker_id: str | None = None
        self._pid: int | None = None
        self._beaten = False  # this worker's heartbeat row exists
        self._last_beat = float("-inf")  # monotonic time of the last stored beat
        self._last_active = float("-inf")  # ... and of the last answer in progress
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._is_stopping: Callable[[], bool] | None = None
        self._graceful_seconds = 0.0
        self._cut_at: float | None = None
        self.checkpoint_transactions = 0

    # --- the turns ------------------------------------------------------------------------------
    def owner(self) -> str | None:
        """This worker's id for a new answer row, starting the heartbeat if it is not running.

        None when the heartbeat cannot be stored (the database is down): the row is then
        unowned, and aged out by the sweep like rows from before heartbeats.
        """
        self.start()
        # Fresh enough that no sweep can take it for stale before the thread's next beat.
        if time.monotonic() - self._last_beat > self._stale_after.total_seconds() / 2:
            self._beat()
        return self._worker_id if self._registered and self._beaten else None

    def track(self, message_id: uuid.UUID, outcome: TurnOutcome, started: float) -> TurnRecorder:
        """A recorder for an answer starting to stream (checkpointed and cut from now on)."""
        recorder = TurnRecorder(self, message_id, outcome, started)
        with self._lock:
            self._live[message_id] = recorder
            self._last_active = time.monotonic()
        return recorder

    def finished(self, recorder: TurnRecorder, outcome: TurnOutcome) -> None:
        """Store a turn's final outcome; a failed write is retried by the background thread."""
        with self._lock:
            self._live.pop(recorder.message_id, None)
        try:
            self._store.finish_turn(recorder.message_id, outcome)
        except SQLAlchemyError as exc:
            # The reader already has the answer; keep it until the database takes it.
            log.error("could not store answer %s (retrying): %s", recorder.message_id, type(exc).__name__)
            with self._lock:
                self._unstored[recorder.message_id] = outcome
            self.start()

    # --- the worker's life ------------------------------------------------------------------------
    @property
    def _registered(self) -> bool:
        return self._worker_id is not None and self._pid == os.getpid()

    def start(self) -> None:
        """Store this worker's heartbeat and start the background thread (idempotent, fork-aware)."""
        with self._lock:
            if self._pid != os.getpid():  # first start, or a forked copy of a started registry
                self._worker_id = uuid.uuid4().hex
                self._pid = os.getpid()
                self._thread = None
                self._beaten = False
                self._last_beat = float("-inf")
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="live-turns", daemon=True)
                self._thread.start()

    def stop_when(self, is_stopping: Callable[[], bool], graceful_seconds: float) -> None:
        """Watch `is_stopping` (the server's signal that this worker stops, within
        `graceful_seconds`); cut the answers still live shortly before that time is up."""
        self._is_stopping = is_stopping
        self._graceful_seconds = graceful_seconds
        self.start()

    def begin_shutdown(self, graceful_seconds: float) -> float:
        """The worker stops within `graceful_seconds`: schedule the cut; returns its delay."""
        delay = max(graceful_seconds - SHUTDOWN_MARGIN_SECONDS, graceful_seconds / 2)
        with self._lock:
            if self._cut_at is None:
                self._cut_at = time.monotonic() + delay
                log.info(
                    "stopping: %d answers live; cutting those still live in %.1f s", len(self._live), delay
                )
        return delay

    def stop(self) -> None:
        """The worker is exiting: cut what is left, store what is owed, drop the heartbeat."""
        self.cut()
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self._store_unstored()
        if self._registered and self._beaten:
            assert self._worker_id is not None  # a registered worker has its id
            try:
                self._store.forget_worker(self._worker_id)
            except SQLAlchemyError as exc:
                log.warning("could not remove this worker's heartbeat: %s", type(exc).__name__)
        with self._lock:
            self._thread = None
            self._pid = None

    # --- the work -------------------------------------------------------------------------------
    def cut(self) -> int:
        """Store every live answer as interrupted (shutdown) and end its stream; returns how many."""
        with self._lock:
            recorders = list(self._live.values())
            self._live.clear()
        outcomes = [(recorder, outcome) for recorder in recorders if (outcome := recorder._cut()) is not None]
        if not outcomes:
            return 0
        try:
            self._store.finish_turns([(recorder.message_id, outcome) for recorder, outcome in outcomes])
        except SQLAlchemyError as exc:
            # The last checkpoint stays; the sweep marks the rows once this worker's heartbeat stops.
            log.error("could not store %d answers cut at shutdown: %s", len(outcomes), type(exc).__name__)
        for recorder, _ in outcomes:
            recorder._wake()
        log.info("stopping: %d answers stored as interrupted and closed", len(outcomes))
        return len(outcomes)

    def checkpoint(self) -> int:
        """Store the text streamed so far of live answers that grew since the last time."""
        with self._lock:
            recorders = list(self._live.values())
        unsaved = {recorder: state for recorder in recorders if (state := recorder._unsaved()) is not None}
        if not unsaved:
            return 0
        texts = {recorder.message_id: text for recorder, (text, _) in unsaved.items()}
        self._store.save_partial_answers(texts)
        for recorder, (_, pieces) in unsaved.items():
            recorder._mark_saved(pieces)
        self.checkpoint_transactions += 1
        self._observer.answers_checkpointed(len(texts))
        return len(texts)

    def sweep(self) -> int:
        """Mark interrupted the answers of workers (of any instance) whose heartbeat is stale."""
        return self._store.mark_abandoned_streams(self._stale_after)

    def _beat(self) -> None:
        assert self._worker_id is not None  # start() sets it before the first beat
        try:
            self._store.beat(self._worker_id, socket.gethostname(), os.getpid())
            self._beaten = True
            self._last_beat = time.monotonic()
        except SQLAlchemyError as exc:
            log.warning("could not store this worker's heartbeat: %s", type(exc).__name__)

    def _store_unstored(self) -> None:
        with self._lock:
            pending, self._unstored = list(self._unstored.items()), {}
        if not pending:
            return
        try:
            self._store.finish_turns(pending)
            log.info("stored %d answers after the database came back", len(pending))
        except SQLAlchemyError:
            with self._lock:
                for message_id, outcome in pending:
                    self._unstored.setdefault(message_id, outcome)

    def _run(self) -> None:
        now = time.monotonic()
        due = {
            "beat": now + self._beat_seconds,
            "checkpoint": now + self._checkpoint_seconds,
            "sweep": now + self._sweep_seconds,
        }
        work: dict[str, Callable[[], object]] = {
            "beat": self._beat,
            "checkpoint": self.checkpoint,
            "sweep": self.sweep,
        }
        period = {
            "beat": self._beat_seconds,
            "checkpoint": self._checkpoint_seconds,
            "sweep": self._sweep_seconds,
        }
        while not self._stop.wait(_TICK_SECONDS):
            now = time.monotonic()
            if self._cut_at is None and self._is_stopping is not None and self._is_stopping():
                self.begin_shutdown(self._graceful_seconds)
            if self._cut_at is not None and now >= self._cut_at:
                self.cut()
            with self._lock:
                if self._live:
                    self._last_active = now
            idle = now - self._last_active > IDLE_AFTER_SECONDS
            for name, task in work.items():
                if now < due[name] or (idle and name != "checkpoint"):
                    continue
                due[name] = now + period[name]
                try:
                    task()
                except SQLAlchemyError as exc:  # the database is down: try again next time
                    log.warning("live turns: %s failed: %s", name, type(exc).__name__)
                except Exception:
                    log.exception("live turns: %s failed", name)
            if self._unstored:
                self._store_unstored()
