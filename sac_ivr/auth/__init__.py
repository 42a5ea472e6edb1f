"""API tokens and roles (agent, supervisor, admin)."""
