"""`LbAgent`: the responder behind one AgentX session, the object `cli` wires up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from agentx_lb.agentx.outbox import OUTBOX_MAX, Outbox
from agentx_lb.agentx.responder import Responder
from agentx_lb.agentx.session import PING_S, SPIN_S, Session
from agentx_lb.clock import EventClock
from agentx_lb.oids import Oid
from agentx_lb.table import Table

__all__ = ["MAX_AGE_S", "LbAgent"]

# Default age limit of served rows (cli passes max_stale_intervals x interval_s),
# and how long a walk pin may go unused before a publish drops it (cli: interval_s).
MAX_AGE_S = 15.0
PIN_IDLE_S = 5.0


class LbAgent:
    """AgentX subagent serving one registered subtree (`root`) from a `Table`."""

    def __init__(
        self,
        socket_path: str,
        root: Oid,
        *,
        agent_id: str = "agentx-lb",
        timeout_s: int = 3,
        priority: int = 127,
        spin_s: float = SPIN_S,
        ping_s: float = PING_S,
        max_age_s: float = MAX_AGE_S,
        pin_idle_s: float = PIN_IDLE_S,
        clock: Callable[[], float] = time.monotonic,
        event_clock: EventClock | None = None,
        notifications: bool = False,
        outbox_max: int = OUTBOX_MAX,
    ) -> None:
        self.root: Oid = tuple(root)
        # With notifications: the queue between `notify()` (scrape thread) and the session.
        self.outbox = Outbox(outbox_max) if notifications else None
        self._clock = clock
        self.responder = Responder(
            self.root,
            max_age_s=max_age_s,
            pin_idle_s=pin_idle_s,
            event_clock=event_clock or EventClock(clock),
        )
        self.session = Session(
            socket_path,
            self.root,
            self.responder.answer,
            on_uptime=self.responder.learn_uptime,
            on_new_session=self.responder.reset_walks,
            agent_id=agent_id,
            timeout_s=timeout_s,
            priority=priority,
            spin_s=spin_s,
            ping_s=ping_s,
            clock=clock,
            outbox=self.outbox,
        )

    @property
    def connected(self) -> bool:
        return self.session.connected

    @property
    def sessions(self) -> int:
        return self.session.sessions

    @property
    def fast_answers(self) -> int:
        return self.responder.fast_answers

    @property
    def table(self) -> Table:
        """The table served now (TimeStamps on snmpd's clock)."""
        return self.responder.served

    def publish(self, table: Table) -> None:
        """Serve `table` from the next PDU on (thread-safe)."""
        self.responder.publish(table, self._clock())

    def notify(self, varbinds: Iterable[bytes]) -> None:
        """Queue notifications (encoded VarBindLists) for the session to send
        (thread-safe; dropped when notifications are off)."""
        if self.outbox is not None:
            self.outbox.put(varbinds)

    @property
    def notifications_sent(self) -> int:
        """Notify PDUs snmpd answered without error."""
        return self.session.notifications_sent

    def handle(self, pdu: bytes) -> bytes | None:
        """The response to one request PDU, answered now."""
        return self.responder.answer(pdu, self._clock())

    def run(self, stop: threading.Event) -> None:
        """Connect, register, answer requests and reconnect until `stop` is set."""
        # The outbox's eventfd stays open: the scrape thread may still put().
        self.session.run(stop)
