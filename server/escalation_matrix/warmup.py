"""Start answering before the model is loaded: the classifier is built in a background thread and
every use of it waits until it is ready. The server can then answer ``initialize`` and
``tools/list`` at once (an MCP client gives up after a few seconds), and only the first call that
classifies pays for the model load."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .errors import EscalationMatrixError

log = logging.getLogger(__name__)


class ModelUnavailableError(EscalationMatrixError):
    """The classifier could not be loaded; the server log says why."""


class BackgroundClassifier:
    """Stands in for a ``Classifier`` that ``factory`` builds in a daemon thread. Attribute access
    blocks until it is built, then behaves exactly like it; a failed build is raised to every caller."""

    def __init__(self, factory: Callable[[], Any], name: str = "escalation-model-loader"):
        self._factory = factory
        self._ready = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self.load_seconds: float | None = None
        self._thread = threading.Thread(target=self._load, name=name, daemon=True)
        self._thread.start()

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            self._value = self._factory()
            self.load_seconds = time.perf_counter() - start
            log.info("classifier ready in %.1f s", self.load_seconds)
        except BaseException as exc:  # reported to every caller, not lost in the thread
            self._error = exc
            log.exception("the classifier failed to load")
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """The classifier, once built (``timeout`` seconds at most; None waits as long as it takes)."""
        if not self._ready.wait(timeout):
            raise ModelUnavailableError(f"the model is still loading after {timeout:.0f} s; try again shortly")
        if self._error is not None:
            raise ModelUnavailableError(f"the model failed to load ({type(self._error).__name__}: {self._error}); "
                                        "the server log has the details") from None
        return self._value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.wait(), name)
