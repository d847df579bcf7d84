"""Redaction of secrets and personal data before text is stored, logged or notified.

Always: payment card numbers (13-19 digits passing the Luhn check), well-known API keys and tokens
(``sk-...``, ``ghp_...``, ``xox?-...``, AWS access keys, JWTs, ``Bearer ...``), ``password=``/
``token:``-style assignments, webhook URLs and URLs carrying credentials. By policy
(``redaction`` in operations.yaml): e-mail addresses and phone numbers. The classifier still sees
the text as written (a rule may need to know that an e-mail address is there); only what is kept
or sent is redacted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"https?://hooks\.slack\.com/\S+|https?://[^\s/]*webhook[^\s]*", re.I), "[webhook URL]"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@\S+", re.I), "[URL with credentials]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "[token]"),
    (re.compile(r"\b(?:sk|pk|rk)[-_](?:live[-_]|test[-_])?[A-Za-z0-9]{16,}"), "[API key]"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), "[token]"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "[token]"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[API key]"),
    (re.compile(r"\bBearer\s+[A-Za-z0-9._~+/-]{12,}=*", re.I), "Bearer [token]"),
    (re.compile(r"\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[:=]\s*)\S+", re.I), r"\1\2[secret]"),
)
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"(?<![\w+])(?:\+\d[\d ()-]{6,}\d|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4})(?![\w-])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card number]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


@dataclass(frozen=True)
class Redactor:
    emails: bool = True
    phones: bool = True

    def text(self, value: str) -> str:
        value = CARD.sub(_card, value)
        for pattern, replacement in SECRETS:
            value = pattern.sub(replacement, value)
        if self.emails:
            value = EMAIL.sub("[email]", value)
        if self.phones:
            value = PHONE.sub(_phone, value)
        return value

    def value(self, value: Any) -> Any:
        """Strings anywhere inside lists and dicts; other values as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[phone]" if 8 <= len(digits) <= 15 else match.group(0)


DEFAULT = Redactor()


def redact(value: Any, redactor: Redactor | None = None) -> Any:
    return (redactor or DEFAULT).value(value)
