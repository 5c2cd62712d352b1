"""The command groups, one module each: ``graphs``, ``runs``, ``schedules`` and ``tools``."""
