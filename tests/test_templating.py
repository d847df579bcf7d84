"""Templates compiled once per process: a policy loaded again reuses the compiled phrases and
message templates, while an edited source is compiled anew and an environment that escapes
differently never gets another's code."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.sandbox import SandboxedEnvironment

from escalation_matrix import templating


def env(folder=None, autoescape=False):
    return SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(folder)) if folder else None,
                                autoescape=autoescape, bytecode_cache=templating.FILE_TEMPLATES)


def test_a_string_template_is_compiled_once_and_renders_in_each_environment(monkeypatch):
    compiled = []
    original = SandboxedEnvironment.compile

    def counting(self, source, *args, **kwargs):
        compiled.append(source)
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(SandboxedEnvironment, "compile", counting)
    source = "Proceed with {{ thing }} (compiled once, unique text 7f3a)"
    first, second = templating.from_string(env(), source), templating.from_string(env(), source)
    assert compiled.count(source) == 1
    assert first.render(thing="a") == second.render(thing="a") == "Proceed with a (compiled once, unique text 7f3a)"


def test_escaping_environments_do_not_share_code():
    source = "<b>{{ x }}</b> (escape check 91c2)"
    plain = templating.from_string(env(), source).render(x="<i>")
    escaped = templating.from_string(env(autoescape=True), source).render(x="<i>")
    assert plain == "<b><i></b> (escape check 91c2)" and escaped == "<b>&lt;i&gt;</b> (escape check 91c2)"


def test_a_syntax_error_is_raised_every_time_and_never_kept():
    for _ in range(2):
        with pytest.raises(jinja2.TemplateSyntaxError):
            templating.from_string(env(), "{{ broken (error check 55de)")


def test_an_edited_file_template_is_compiled_again(tmp_path):
    path = tmp_path / "message.txt.j2"
    path.write_text("first {{ x }}", encoding="utf-8")
    assert env(tmp_path).get_template(path.name).render(x=1) == "first 1"
    assert env(tmp_path).get_template(path.name).render(x=2) == "first 2"  # from the cache
    path.write_text("second {{ x }}", encoding="utf-8")
    assert env(tmp_path).get_template(path.name).render(x=3) == "second 3"
