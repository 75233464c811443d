"""Interview sessions: participants, roles, persistence, execution history."""
