"""The library's exceptions. Adapters (CLI, MCP, LangChain) translate these at the edge."""

from __future__ import annotations


class EscalationMatrixError(Exception):
    """Base class: a message meant for the person or agent who made the call."""


class PolicyError(EscalationMatrixError):
    """One or more policy, phrase or exemplar files are invalid.

    ``problems`` holds every (file, key, what to fix) found, so ``policy check`` can list them all.
    """

    def __init__(self, file: str, key: str, message: str, *more: tuple[str, str, str]):
        self.problems: list[tuple[str, str, str]] = [(file, key, message), *more]
        super().__init__("\n".join(_format(*p) for p in self.problems))

    @classmethod
    def collect(cls, problems: list[tuple[str, str, str]]) -> "PolicyError":
        return cls(*problems[0], *problems[1:])


def _format(file: str, key: str, message: str) -> str:
    return f"{file}: {key}: {message}" if key else f"{file}: {message}"


class InputError(EscalationMatrixError):
    """A caller passed a value that cannot be used; the message says what to send instead."""


class NotFoundError(EscalationMatrixError):
    """A referenced record (escalation, conversation, task) does not exist."""


class StateError(EscalationMatrixError):
    """The operation conflicts with the current state (e.g. answering a closed escalation)."""


class DependencyError(EscalationMatrixError):
    """An optional heavy dependency is missing; the message carries the install hint."""


class UnavailableError(EscalationMatrixError):
    """The state database cannot be reached for now (a lost connection, a restart); retry later.
    ``retryable`` tells adapters to say so."""

    retryable = True
