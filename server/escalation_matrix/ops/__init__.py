"""Escalation records and operations: operator actions, fail-safe timers, pipeline
triggers, notifications with an outbox, reports, audit verification and the web console.

Kept import-light: the policy model here is loaded by ``policy.py``; heavier modules (matplotlib,
starlette) are imported only by the functions that need them."""
