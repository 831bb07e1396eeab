"""Tests for config/expand.py: every $name form, laziness, loop detection, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.config.expand import Expander, ExpandError

VARS = {
    "a": "A",
    "empty": "",
    "ref": "$a-${a}-$(a)",
    "loop1": "$loop2",
    "loop2": "${loop1}",
    "self": "x $self",
    "level": "3.6",
    "n": "10",
}


def expand(text: str, extra: dict[str, str] | None = None) -> str:
    table = {**VARS, **(extra or {})}
    return Expander(table.get).text(text)


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("plain", "plain"),
        ("$a", "A"),
        ("${a}", "A"),
        ("$(a)", "A"),
        ("$a$a", "AA"),
        ("x$a.y", "xA.y"),
        ("$ref", "A-A-A"),
        ("$undefined", ""),
        ("cost $$5", "cost $5"),
        ("$$a", "$a"),
        ("trailing $", "trailing $"),
        ("$ space", "$ space"),
        ("${a?yes}", "yes"),
        ("${empty?yes}", ""),
        ("${a:no}", ""),
        ("${empty:no}", "no"),
        ("${undefined:$a}", "A"),
        ("${a?{with {nested} braces}}", "with {nested} braces"),
        ("${a?{x}}", "x"),
        ("${empty:{y, z}}", "y, z"),
        ("${a?{T}:{F}}", "T"),
        ("${empty?{T}:{F}}", "F"),
        ("${empty ?{T}:{F}}".replace(" ", ""), "F"),
        ("${a?{ $a }:{$loop1}}", " A "),
        ("${empty?{$loop1}:{ok}}", "ok"),
        ("${{$a} == {A} ? {eq} : {ne}}", "eq"),
        ("${{$a} != {A} ? {eq} : {ne}}", "ne"),
        ("${{$n} < {9} ? {lt} : {ge}}", "ge"),
        ("${{$n} >= {10} ? {ge}}", "ge"),
        ("${{$n} <= {9} ? {le}}", ""),
        ("${{$n} > {9}?{gt}}", "gt"),
        ("${{$level} <level {3.10} ? {older} : {newer}}", "older"),
        ("${{$level} >=level {3.6} ? {ok}}", "ok"),
        ("${{2} <=level {10} ? {ok}}", "ok"),
        ("${{$level} >level {3} ? {ok}}", "ok"),
    ],
)
def test_expand(text: str, result: str) -> None:
    assert expand(text) == result


@pytest.mark.parametrize("text", ["$loop1", "${self}", "${a?{$loop2}}"])
def test_loops_are_detected(text: str) -> None:
    with pytest.raises(ExpandError, match="recursive expansion") as info:
        expand(text)
    assert info.value.name in {"loop1", "loop2", "self"}


def test_deep_nesting_is_refused() -> None:
    chain = {f"v{i}": f"$v{i + 1}" for i in range(150)}
    with pytest.raises(ExpandError, match="nesting"):
        expand("$v0", chain)


@pytest.mark.parametrize(
    "text",
    [
        "${a",
        "$(a",
        "${}",
        "${a-b}",
        "${a!x}",
        "${a?{x}:{y}",
        "${a?{x}junk}",
        "${a:{x}:{y}}",
        "${a?{x}:{y}z}",
        "${{a} ~ {b} ? {x}}",
        "${{a} == {b} {x}}",
        "${{a} == b ? {x}}",
        "${{a} < {b} ? {x}}",
        "${{x.y} <level {1} ? {x}}",
    ],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(ExpandError):
        expand(text)


def test_cache_and_referenced() -> None:
    calls: list[str] = []

    def lookup(name: str) -> str | None:
        calls.append(name)
        return VARS.get(name)

    expander = Expander(lookup)
    assert expander.text("$ref $ref") == "A-A-A A-A-A"
    assert calls.count("ref") == 1 and calls.count("a") == 1
    assert expander.referenced == {"ref", "a"}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="${}()?:=!<> abcl0.-,\\", max_size=60))
def test_fuzz_never_crashes_or_hangs(text: str) -> None:
    try:
        result = expand(text, {"b": text, "c": "$b$b"})
    except ExpandError:
        return
    assert isinstance(result, str)


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("${domain_to_ascii{$host}}", "xn--bcher-kva.example"),
        ("{.${domain_to_ascii{ $host }}=x}", "{.xn--bcher-kva.example=x}"),
        ("${domain_to_ascii{example.org}}", "example.org"),  # ASCII as it is (Postfix)
        ("${domain_to_utf8{$ace}}", "bücher.example"),
        ("${domain_to_utf8{Mail.XN--BCHER-KVA.example}}", "mail.bücher.example"),
        ("${domain_to_utf8{bücher.example}}", "bücher.example"),
        ("${domain_to_ascii {$host}}", "xn--bcher-kva.example"),  # space before "{"
    ],
)
def test_named_functions(text: str, result: str) -> None:
    # Postfix 3.11's mac_midna functions, as smtp_requiretls_policy's default uses one.
    extra = {"host": "bücher.example", "ace": "xn--bcher-kva.example"}
    assert expand(text, extra) == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${nofn{a}}", 'unknown function "nofn" in "${nofn{a}}"'),
        ("${domain_to_ascii{bü..b}}", "bad domain argument in: 'domain_to_ascii{bü..b}'"),
        ("${domain_to_utf8{xn--zz}}", "bad domain argument in: 'domain_to_utf8{xn--zz}'"),
        ("${domain_to_ascii{x}y}", 'unexpected input after "}" in "${domain_to_ascii{x}y}"'),
    ],
)
def test_named_function_errors(text: str, message: str) -> None:
    with pytest.raises(ExpandError) as info:
        expand(text)
    assert str(info.value) == message
