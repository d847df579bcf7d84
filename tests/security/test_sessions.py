"""Console sessions expire when idle and at an absolute limit, on a hand-moved monotonic clock."""

from __future__ import annotations

from escalation_matrix.http_security import LOCAL_OPERATOR, Sessions, TokenTable, bearer


class Tick:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_expires_after_the_idle_time():
    tick = Tick()
    sessions = Sessions(idle=60, absolute=3600, clock=tick)
    session = sessions.create(LOCAL_OPERATOR)
    tick.now += 59
    assert sessions.get(session.id) is session  # use keeps it alive
    tick.now += 61
    assert sessions.get(session.id) is None


def test_a_session_in_use_still_ends_at_the_absolute_limit():
    tick = Tick()
    sessions = Sessions(idle=60, absolute=300, clock=tick)
    session = sessions.create(LOCAL_OPERATOR)
    for _ in range(5):
        tick.now += 50
        assert sessions.get(session.id) is session
    tick.now += 51
    assert sessions.get(session.id) is None


def test_an_ended_session_is_refused():
    sessions = Sessions()
    session = sessions.create(LOCAL_OPERATOR)
    session.ended = True
    assert sessions.get(session.id) is None


def test_tokens_map_to_principals_and_the_bearer_scheme_is_case_insensitive(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# who\noperator ana aaaaaaaaaaaaaaaaaaaa\nagent bot bbbbbbbbbbbbbbbbbbbb  # a comment\n")
    table = TokenTable.load("shared-token-123456", path)
    assert table.lookup("aaaaaaaaaaaaaaaaaaaa").name == "ana" and table.lookup("bbbbbbbbbbbbbbbbbbbb").role == "agent"
    assert table.lookup("shared-token-123456").personal is False and table.lookup("nope") is None
    assert [bearer(h) for h in (b"Bearer t", b"bearer t", b"BEARER  t ", b"Basic t", b"t")] == ["t", "t", "t", None, None]
