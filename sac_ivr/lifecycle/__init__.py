"""Request lifecycle: statuses and transitions, subjects, departments, legal deadlines."""
