"""Private snmpd fixtures (owned by the AgentX work)."""
