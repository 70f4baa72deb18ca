"""agentx-lb: an SNMP AgentX subagent for the fd.io VPP lb (Maglev) plugin."""

__version__ = "0.1.0"
