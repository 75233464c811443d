"""Completion and inspection in the C++ kernel: reading clang's answers (pure logic), asking the
real clang++ about a session's code, and the kernel's replies through jupyter_client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kernelpad.kernels.cpp import intellisense
from kernelpad.kernels.cpp.cells import prepare
from kernelpad.kernels.cpp.intellisense import (
    Candidate,
    Intellisense,
    matches,
    parse,
    qualified_name,
    readable,
    word_at,
)
from tests.kernels.cpp.client import cpp_kernel

CLANG_OUTPUT = """\
PREFERRED-TYPE: int
COMPLETION: _M_impl (Inaccessible) : [#_Vector_impl#]_M_impl
COMPLETION: operator= (Hidden,InBase,Inaccessible) : [#_Base &#]operator=(<#const _Base &#>)
COMPLETION: push_back : [#void#]push_back(<#const value_type &x#>) : Add data to the %vector.
COMPLETION: push_back : [#void#]push_back(<#value_type &&x#>)
COMPLETION: data : [#int *#]data()
COMPLETION: size : [#size_type#]size()[# const#]
COMPLETION: vector : vector<<#typename Tp#>{#, <#typename Alloc#>#}>
COMPLETION: Pattern : return <#expression#>;
COMPLETION: Pattern : [#bool#]true
COMPLETION: int
OVERLOAD: [#void#]push_back(<#const value_type &x#>)
"""


def test_clang_patterns_read_as_declarations() -> None:
    assert readable("[#int#]add(<#int a#>, <#int b#>)") == "int add(int a, int b)"
    assert readable("[#size_type#]size()[# const#]") == "size_type size() const"
    assert readable("[#int *#]data()") == "int *data()"
    assert readable("[#std::vector<int>#]xs") == "std::vector<int> xs"
    assert readable("vector<<#typename Tp#>{#, <#typename Alloc#>#}>") == (
        "vector<typename Tp, typename Alloc>"
    )


def test_parse_keeps_what_the_cursor_can_use() -> None:
    found = parse(CLANG_OUTPUT)
    assert found[0] == Candidate(
        "push_back", "void push_back(const value_type &x)", "Add data to the vector."
    )
    names = [c.name for c in found]
    assert "_M_impl" not in names and "operator=" not in names  # private, hidden
    assert {"return", "true", "int"} <= set(names)  # keywords, from patterns or alone
    assert next(c for c in found if c.name == "return").declaration == ""


def test_matches_start_with_the_prefix_without_reserved_names() -> None:
    found = [Candidate(n) for n in ("push_back", "pop_back", "_M_impl", "__kp", "Pair", "pair")]
    assert matches(found, "p") == ["pair", "pop_back", "push_back"]
    assert matches(found, "") == ["Pair", "pair", "pop_back", "push_back"]
    assert matches(found, "_") == ["_M_impl"]  # the user asks for them; never the kernel's own


@pytest.mark.parametrize(
    ("code", "cursor", "word"),
    [
        ("xs.push_back(1)", 5, "push_back"),  # in the word
        ("twice", 5, "twice"),  # just after it
        ("std::max(a, ", 12, "max"),  # between a call's parentheses
        ("f(g(1), ", 8, "f"),
        ("x = 1 + ", 8, None),
        ("12", 2, None),
    ],
)
def test_the_word_to_inspect(code: str, cursor: int, word: str | None) -> None:
    span = word_at(code, cursor)
    assert (code[span[0] : span[1]] if span else None) == word


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("std::string", "std::string"),
        ("x = std :: chrono::seconds", "std::chrono::seconds"),
        ("::twice", "twice"),
        ("xs.size", None),  # a member: of a class the text does not name
        ("it->first", None),
    ],
)
def test_qualified_names_for_definitions(code: str, name: str | None) -> None:
    span = word_at(code, len(code))
    assert span is not None
    assert qualified_name(code, *span) == name


def session(*cells: str) -> list[str]:
    """The inputs the kernel would keep for ``cells``, had they all run."""
    return [source for cell in cells for source in prepare(cell).inputs]


@pytest.fixture
async def assist() -> AsyncIterator[Intellisense]:
    ide = Intellisense()
    yield ide
    ide.close()


async def complete(ide: Intellisense, history: list[str], code: str) -> list[str]:
    reply = await ide.complete(history, code, len(code))
    assert reply["status"] == "ok" and reply["cursor_end"] == len(code)
    return list(reply["matches"])


async def test_completion_knows_the_library_and_the_session(assist: Intellisense) -> None:
    history = session("#include <vector>\nstd::vector<int> xs{1, 2};", "int twice(int n) {}")
    assert "vector" in await complete(assist, history, "std::vec")
    assert await complete(assist, history, "xs.push_") == ["push_back"]
    assert await complete(assist, history, "int y = tw") == ["twice"]
    # Inside a function of the cell being written, and after a statement at file scope.
    assert "xs" in await complete(assist, history, "void f() {\n  int n = 0;\n  x")
    assert await complete(assist, history, "xs.clear();\nint y = tw") == ["twice"]


async def test_cursor_in_code_points(assist: Intellisense) -> None:
    code = 'std::string s = "héllo";\ns.emp'
    reply = await assist.complete([], code + " + 1", len(code))
    assert reply["matches"] == ["empty"]
    assert (reply["cursor_start"], reply["cursor_end"]) == (len(code) - 3, len(code))


async def test_precompiled_headers_answer_the_same(assist: Intellisense) -> None:
    history = session("#include <bits/stdc++.h>\nusing namespace std;", "map<int, int> counts;")
    first = await complete(assist, history, "counts.er")
    building = assist._building  # started after the first answer
    assert building is not None
    await building
    assert assist._pch is not None and assist._pch[1].is_file()
    assert await complete(assist, history, "counts.er") == first == ["erase"]


async def test_no_clang_or_a_slow_one_is_no_matches(
    assist: Intellisense, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intellisense, "CLANG", "/nonexistent/clang++")
    assert await complete(assist, [], "std::vec") == []
    assert await intellisense._run(["sleep", "10"], 0.2) is None


async def test_inspect_describes_the_declaration(assist: Intellisense) -> None:
    history = session("#include <vector>\nstd::vector<int> xs;", "int add(int a, int b) {}")
    found = await assist.inspect(history, "add(1, 2)", 1)
    assert found["found"] is True
    assert found["data"]["text/plain"] == "int add(int a, int b)"
    documented = await assist.inspect(history, "xs.push_back", 12)
    assert documented["data"]["text/plain"].startswith(
        "void push_back(const value_type &x)\n    Add data to the end of the vector."
    )
    assert (await assist.inspect(history, "xs", 2))["data"]["text/plain"] == "std::vector<int> xs"
    member = await assist.inspect(history, "xs.size()", 5)
    assert member["data"]["text/plain"].startswith("size_type size() const")
    detailed = await assist.inspect(history, "add(1, ", 7, detail_level=1)
    assert "int add(int a, int b) {" in detailed["data"]["text/plain"]
    for code in ("nowhere_declared", "int", "1 + 2"):
        missing = await assist.inspect(history, code, len(code))
        assert missing == {"status": "ok", "found": False, "data": {}, "metadata": {}}


@pytest.fixture(scope="module")
async def kernel() -> AsyncIterator[Any]:
    async with cpp_kernel(graceful=True) as client:  # the kernel removes its clang files
        yield client


async def run(kernel: Any, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reply to ``code`` and the outputs it sent (message type and content), but the
    kernel's own notices (a restart the cell waited for)."""
    outputs: list[dict[str, Any]] = []

    def keep(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream" and content["text"].startswith("[kernel:"):
            return
        if msg["msg_type"] in {"stream", "error", "execute_result", "display_data"}:
            outputs.append({"type": msg["msg_type"], **content})

    reply = await kernel.execute_interactive(code, output_hook=keep, timeout=60)
    return reply["content"], outputs


async def test_kernel_completes_what_earlier_cells_declared(kernel: Any) -> None:
    reply, _ = await run(kernel, "#include <vector>\nstd::vector<int> primes{2, 3, 5};")
    assert reply["status"] == "ok"
    await run(kernel, "int bad = ;")  # a failed cell declares nothing
    code = "primes.push_back(7);\nprim"
    answer = (await kernel.complete(code, len(code), reply=True, timeout=30))["content"]
    assert answer["matches"] == ["primes"]
    assert (answer["cursor_start"], answer["cursor_end"]) == (len(code) - 4, len(code))
    member = (await kernel.complete("primes.pu", reply=True, timeout=30))["content"]
    assert member["matches"] == ["push_back"]
    assert "bad" not in (await kernel.complete("ba", reply=True, timeout=30))["content"]["matches"]


async def test_kernel_inspects(kernel: Any) -> None:
    await run(kernel, "int triple(int n) { return 3 * n; }")
    found = (await kernel.inspect("triple(2)", 3, reply=True, timeout=30))["content"]
    assert found["status"] == "ok" and found["found"] is True
    assert found["data"]["text/plain"] == "int triple(int n)"
    missing = (await kernel.inspect("quadruple", reply=True, timeout=30))["content"]
    assert missing["found"] is False


async def test_a_failed_cell_is_one_error_and_no_stderr(kernel: Any) -> None:
    reply, outputs = await run(kernel, "int broken = ;")
    assert reply["status"] == "error"
    assert [o["type"] for o in outputs] == ["error"]
    # clang's diagnostics past 64 KiB (candidates for << listed again and again): still one
    # error, none of it on stderr.
    many = "\n".join("  std::cout << Plain{};" for _ in range(8))
    reply, outputs = await run(
        kernel, f"#include <bits/stdc++.h>\nstruct Plain {{}};\nvoid show() {{\n{many}\n}}"
    )
    assert reply["status"] == "error"
    assert [o["type"] for o in outputs] == ["error"]
    assert sum(len(line) for line in outputs[0]["traceback"]) > 64 * 1024


async def test_a_crash_says_what_the_program_said_once(kernel: Any) -> None:
    reply, outputs = await run(kernel, '#include <stdexcept>\nthrow std::runtime_error("boom");')
    assert reply["status"] == "error"
    assert [o["type"] for o in outputs] == ["stream", "error"]
    assert "what():  boom" in outputs[0]["text"]
    assert not any("boom" in line for line in outputs[1]["traceback"])
