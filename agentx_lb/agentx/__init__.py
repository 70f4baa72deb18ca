"""The AgentX protocol side: our subagent session to snmpd (the only pyagentx3 importer).

    codec.py      the wire: pyagentx3's PDU codec wrapped (Open/Register/Ping/Notify/Close,
                  Response fields incl. res.sysUpTime), request parsing, answers
    session.py    connect, Open, Register, serve, Ping, reconnect with backoff, Close;
                  sends queued notifications (Notify) and matches their Responses
    outbox.py     the bounded queue of notifications from the scrape thread to the session
    responder.py  pure: table + request PDU + now -> response bytes; the age rule,
                  TimeStamps on snmpd's clock, the GetNext fast path
    pins.py       walk pins: one class, a dataclass per pin, their age policy
    agent.py      `LbAgent`: a responder behind a session

See docs/architecture.md for the clock and the age rule.
"""

from agentx_lb.agentx.agent import MAX_AGE_S, LbAgent
from agentx_lb.agentx.codec import HDR_LEN, ProtocolError
from agentx_lb.agentx.pins import MAX_PINS
from agentx_lb.agentx.responder import Responder
from agentx_lb.agentx.session import Connection, Session

__all__ = [
    "HDR_LEN",
    "MAX_AGE_S",
    "MAX_PINS",
    "Connection",
    "LbAgent",
    "ProtocolError",
    "Responder",
    "Session",
]
