"""Schedules: EventBridge Scheduler expressions (``expressions``) and the function that starts a scheduled run
(``handler``)."""
