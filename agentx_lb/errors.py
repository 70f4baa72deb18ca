"""The errors agentx-lb raises, one small tree.

    AgentxLbError
     +-- ConfigError              bad configuration: the CLI exits 2 with one line
     +-- CliParseError            `show lb vips verbose` text we do not understand
     +-- SourceError              reading VPP failed (the agent keeps serving)
          +-- SourceUnavailableError   socket absent/refused/permission/timeout/hang
          +-- SourceDataError          VPP answered, but with something unusable
                                       (retval != 0, missing messages, corrupt vector)

Third-party exceptions (vpp_papi, socket) are translated once, at the adapter
(`agentx_lb.vpp.source`), with ``raise ... from exc``.
"""

from __future__ import annotations


class AgentxLbError(Exception):
    """Base of every error agentx-lb raises on purpose."""


class ConfigError(AgentxLbError):
    """The configuration is invalid; ``str()`` is the one line shown to the user."""


class CliParseError(AgentxLbError):
    """A line of VPP CLI output that the parser does not understand."""

    def __init__(self, line_no: int, line: str, reason: str) -> None:
        self.line_no = line_no
        self.line = line
        self.reason = reason
        super().__init__(f"line {line_no}: {reason}: {line!r}")

    @property
    def problem(self) -> str:
        """The problem without the line number: one key per distinct problem."""
        return f"{self.reason}: {self.line.strip()!r}"


class SourceError(AgentxLbError):
    """Reading VPP failed."""


class SourceUnavailableError(SourceError):
    """VPP cannot be reached (socket missing, refused, permission, timeout)."""


class SourceDataError(SourceError):
    """VPP answered with something we cannot use."""
