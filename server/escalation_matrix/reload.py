"""Hot reload: a running server picks up edited policy, phrase and exemplar files.

A daemon thread reloads when a file under the three folders changes (polling their names, sizes
and modification times: no extra dependency), on SIGHUP, or when ``escalation-matrix reload``
bumps a counter in the state file (so every server on that file reloads, whatever its pid). The
new files are validated first; on a bad edit the server keeps serving the old policy and reports
the problem in its log and in ``status`` (the ``policy://status`` resource). Exemplar vectors are
encoded before the swap, so calls keep being answered meanwhile."""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import PolicyError
from .store import Store

if TYPE_CHECKING:
    from .guard import ConversationGuard
    from .loader import Policy

log = logging.getLogger("escalation_matrix.reload")
COUNTER = "policy-reload"


def fingerprint(folders: list[Path]) -> str:
    """Changes when any file under ``folders`` is added, removed or edited."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def request_reload(store: Store) -> int:
    """Ask every server on ``store``'s file to reload (the ``reload`` operator command)."""
    with store.transaction() as conn:
        return store.counters.increment(conn, COUNTER)


def _requests(store: Store) -> int:
    return store.counters.value(COUNTER) or 0


class Reloader:
    """Reloads ``guard``'s policy and classifier; ``on_reload`` callbacks get the new policy."""

    def __init__(self, guard: ConversationGuard, interval: float = 2.0,
                 on_reload: list[Callable[[Policy], None]] | None = None):
        self.guard = guard
        self.interval = interval
        self.on_reload = list(on_reload or [])
        paths = guard.policy.paths
        self.folders = [paths.policies, paths.phrases, paths.embeddings]
        self._seen = fingerprint(self.folders)
        self._requests = _requests(guard.store)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reason = "watch"
        self._thread = threading.Thread(target=self._run, name="escalation-policy-reloader", daemon=True)
        guard.policy_status = self._status(ok=True, loaded_at=guard.store.now(), reloads=0)

    def _status(self, **fields: Any) -> dict[str, Any]:
        previous = dict(self.guard.policy_status or {})
        previous.update(policies=str(self.folders[0]), phrases=str(self.folders[1]), embeddings=str(self.folders[2]))
        previous.setdefault("problems", [])
        previous.update(fields)
        return previous

    def reload(self, reason: str = "request") -> dict[str, Any]:
        """Validate the files and, when they are sound, swap them in. Returns the new status."""
        from .classifier import Classifier
        from .loader import load_policy

        with self._lock:
            self._seen = fingerprint(self.folders)
            now = self.guard.store.now()
            try:
                policies, phrases, embeddings = self.folders
                policy = load_policy(policies, phrases, embeddings, locale=self.guard.policy.locale_override)
            except PolicyError as exc:
                problems = [f"{f}: {k}: {m}" if k else f"{f}: {m}" for f, k, m in exc.problems]
                log.warning("policy reload (%s) refused, still serving the policy loaded at %s:\n  %s",
                            reason, self.guard.policy_status.get("loaded_at"), "\n  ".join(problems))
                self.guard.policy_status = self._status(ok=False, problems=problems, failed_at=now)
                return self.guard.policy_status
            old, new = self.guard.classifier.settings, policy.classifier
            # the loaded encoder is kept unless the edit names another model (seconds to load otherwise)
            same_model = (old.model, old.method, old.trained.folder) == (new.model, new.method, new.trained.folder)
            classifier = Classifier(policy, embedder=self.guard.classifier.embedder if same_model else None)
            self.guard.swap(policy, classifier)
            for callback in self.on_reload:
                callback(policy)
            count = self.guard.policy_status.get("reloads", 0) + 1
            self.guard.policy_status = self._status(ok=True, problems=[], loaded_at=now, reloads=count,
                                                    reason=reason, failed_at=None)
            log.info("policy reloaded (%s): %d rules, %d exemplars", reason, len(policy.rules.rules),
                     len(policy.exemplars))
            return self.guard.policy_status

    def wake(self, reason: str) -> None:
        self._reason = reason
        self._wake.set()

    def install_sighup(self) -> bool:
        """Reload on SIGHUP (main thread only, where the platform has it)."""
        if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
            return False
        signal.signal(signal.SIGHUP, lambda *_: self.wake("SIGHUP"))
        return True

    def start(self) -> "Reloader":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.interval)
            if self._stop.is_set():
                return
            try:
                requests = _requests(self.guard.store)
                reason = self._reason if woken else None
                if reason is None and requests != self._requests:
                    reason = "reload command"
                if reason is None and fingerprint(self.folders) != self._seen:
                    reason = "file change"
                self._requests = requests
                self._wake.clear()
                self._reason = "watch"
                if reason:
                    self.reload(reason)
            except Exception:  # the watcher must survive a bad tick
                log.exception("policy watcher failed; retrying in %.0f s", self.interval)


def start_reloader(guard: ConversationGuard, interval: float = 2.0,
                   on_reload: list[Callable[[Policy], None]] | None = None) -> Reloader:
    reloader = Reloader(guard, interval, on_reload).start()
    reloader.install_sighup()
    return reloader


__all__ = ["Reloader", "fingerprint", "request_reload", "start_reloader"]
