"""Scheduled tasks: per-server cron schedules, kept on the agent and run by it.

One idea per module:

- ``clock``      the injected clock (``SystemClock``; ``ManualClock`` for tests)
- ``cron``       the full cron check and the next fire time (the only ``croniter`` import)
- ``store``      the schedules file (SQLite in the state directory)
- ``actions``    what a task does (``TaskActions``; ``AgentTaskActions`` on the real agent)
- ``runner``     one run: the task chain with its delays, and its events
- ``scheduler``  the tickers, missed runs at start, never two runs at once, the changes
- ``routes``     ``/containers/{id}/schedules``
"""

from lightd_agent.schedules.actions import AgentTaskActions, TaskActions, TaskFailed
from lightd_agent.schedules.clock import Clock, ManualClock, SystemClock
from lightd_agent.schedules.scheduler import Scheduler
from lightd_agent.schedules.store import SCHEDULES_FILE, Schedule, ScheduleStore

__all__ = [
    "SCHEDULES_FILE",
    "AgentTaskActions",
    "Clock",
    "ManualClock",
    "Schedule",
    "ScheduleStore",
    "Scheduler",
    "SystemClock",
    "TaskActions",
    "TaskFailed",
]
