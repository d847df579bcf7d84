"""Start answering before the model is loaded: the classifier is built in a background thread and
every use of it waits until it is ready. The server can then answer ``initialize`` and
``tools/list`` at once (an MCP client gives up after a few seconds), and only the first call that
classifies pays for the model load."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .errors import EscalationMatrixError

if TYPE_CHECKING:
    import numpy as np

    from .classifier import Offsets, RequestClassifier
    from .embedder import Embedder
    from .policy import ClassifierFile
    from .models import Classification

log = logging.getLogger(__name__)


class ModelUnavailableError(EscalationMatrixError):
    """The classifier could not be loaded; the server log says why."""


class BackgroundClassifier:
    """Stands in for a ``Classifier`` that ``factory`` builds in a daemon thread. Attribute access
    blocks until it is built, then behaves exactly like it; a failed build is raised to every caller."""

    def __init__(self, factory: Callable[[], RequestClassifier], name: str = "escalation-model-loader"):
        self._factory = factory
        self._ready = threading.Event()
        self._value: RequestClassifier | None = None
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

    def settle(self, timeout: float = 60.0) -> None:
        """Let a load in progress finish before the process exits: the encoder's native threads
        torn down under a running load abort the process ("terminate called ...")."""
        self._ready.wait(timeout)

    def wait(self, timeout: float | None = None) -> RequestClassifier:
        """The classifier, once built (``timeout`` seconds at most; None waits as long as it takes)."""
        if not self._ready.wait(timeout):
            raise ModelUnavailableError(f"the model is still loading after {timeout:.0f} s; try again shortly")
        if self._error is not None or self._value is None:
            raise ModelUnavailableError(f"the model failed to load ({type(self._error).__name__}: {self._error}); "
                                        "the server log has the details") from None
        return self._value

    # the classifier's own methods, typed (``RequestClassifier``); anything else through __getattr__
    @property
    def embedder(self) -> Embedder:
        return self.wait().embedder

    @property
    def settings(self) -> ClassifierFile:
        return self.wait().settings

    def classify(self, request: str, context: dict[str, Any] | None = None,
                 offsets: Offsets | None = None) -> Classification:
        return self.wait().classify(request, context, offsets)

    def classify_encoded(self, requests: list[str], contexts: Iterable[dict[str, Any] | None] | None = None,
                         offsets: Offsets | None = None) -> tuple[list[Classification], np.ndarray]:
        return self.wait().classify_encoded(requests, contexts, offsets)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.wait(), name)
