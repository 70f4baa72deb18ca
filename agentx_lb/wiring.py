"""One place that puts the agent together: VPP source, scrape pipeline, AgentX agent.

`agentx-lb run` and the demo wire the same parts the same way from a `Config`;
the demo only points it at its own sockets, state directory and interval.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from agentx_lb.agentx import LbAgent
from agentx_lb.clock import EventClock
from agentx_lb.config import Config
from agentx_lb.pipeline import Pipeline
from agentx_lb.reduce import reduce
from agentx_lb.vpp.source import VppSource

__all__ = ["Wired", "wire"]


@dataclass(frozen=True, slots=True)
class Wired:
    source: VppSource
    agent: LbAgent
    pipeline: Pipeline


def wire(cfg: Config) -> Wired:
    """The agent's parts for `cfg`, connected; nothing is started."""
    source = VppSource(
        cfg.vpp_stats_socket, cfg.vpp_api_socket, cfg.vpp_api_dir, timeout_s=cfg.vpp_timeout_s
    )
    # One event clock for both: the pipeline stamps events, the agent converts
    # them to snmpd's sysUpTime. No row older than the staleness limit is served.
    events = EventClock()
    agent = LbAgent(
        cfg.agentx_socket,
        cfg.oid_root,
        max_age_s=cfg.max_stale_intervals * cfg.interval_s,
        pin_idle_s=cfg.interval_s,
        event_clock=events,
        notifications=cfg.notifications,
    )
    pipeline = Pipeline(
        source,
        agent.publish,
        root=cfg.oid_root,
        interval_s=cfg.interval_s,
        max_stale_intervals=cfg.max_stale_intervals,
        state_path=cfg.state_path,
        event_clock=events,
        reduce=functools.partial(reduce, retain_absent_cs=int(cfg.vip_retention_s * 100)),
        notify=agent.notify if cfg.notifications else None,
        notify_holddown_s=cfg.notify_holddown_s,
    )
    return Wired(source, agent, pipeline)
