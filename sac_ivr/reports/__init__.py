"""Reports for supervisors: pending and overdue requests, by nature, department and
agent, resolution times, calls per hour (JSON, CSV and an HTML page with charts)."""
