"""Agent panel and supervisor view: live calls and queues over SSE, the screen pop."""
