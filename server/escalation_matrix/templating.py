"""Compiled Jinja2 templates kept for the life of the process, so a policy loaded again (a hot
reload, another guard in the same process, the CLI's checks) does not compile the same phrase and
message templates again. Only compilation is shared: each policy still gets its own environment
and template objects, and a changed source is compiled anew (file templates are checked against
their source's checksum; string templates are looked up by their text)."""

from __future__ import annotations

import threading
from types import CodeType
from typing import Any

import jinja2
from jinja2.bccache import Bucket, BytecodeCache


class _MemoryBytecodeCache(BytecodeCache):
    """Jinja's bytecode cache in a dict: a file template whose source is unchanged is not compiled
    again (Jinja compares the stored checksum with the source's before using it)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: Bucket) -> None:
        with self._lock:
            data = self._data.get(bucket.key)
        if data is not None:
            bucket.bytecode_from_string(data)

    def dump_bytecode(self, bucket: Bucket) -> None:
        data = bucket.bytecode_to_string()
        with self._lock:
            self._data[bucket.key] = data


FILE_TEMPLATES = _MemoryBytecodeCache()
_STRINGS: dict[tuple[Any, ...], CodeType] = {}
_STRINGS_LOCK = threading.Lock()


def from_string(env: jinja2.Environment, source: str) -> jinja2.Template:
    """``env.from_string(source)``, compiling ``source`` once per process for environments that
    compile it alike (same class, string autoescaping and whitespace settings). Raises
    ``TemplateSyntaxError`` as ``from_string`` does."""
    autoescape = env.autoescape(None) if callable(env.autoescape) else env.autoescape
    key = (type(env), bool(autoescape), env.keep_trailing_newline, env.trim_blocks, env.lstrip_blocks,
           env.block_start_string, env.variable_start_string, env.comment_start_string, source)
    with _STRINGS_LOCK:
        code = _STRINGS.get(key)
    if code is None:
        code = env.compile(source)
        with _STRINGS_LOCK:
            _STRINGS[key] = code
    return env.template_class.from_code(env, code, env.make_globals(None))
