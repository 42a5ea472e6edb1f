"""Notifications to customers (SMS, e-mail) through a transactional outbox."""
