"""How C++ cells become clang-repl inputs (pure logic)."""

from __future__ import annotations

import pytest

from kernelpad.kernels.cpp.cells import diagnostics, is_complete, prepare, strip_line_comment


def test_a_multi_line_cell_is_one_continued_input() -> None:
    prepared = prepare("int twice(int n) {\n    return 2 * n;\n}")
    assert prepared.inputs == ("int twice(int n) { \\\n    return 2 * n; \\\n}",)
    assert not prepared.shows_value


def test_includes_go_first_and_directives_are_inputs_of_their_own() -> None:
    prepared = prepare(
        "#include <vector>\nstd::vector<int> v{1, 2};\n#include <string>\nint x;\n"
        "#define N 3\nint y = N;"
    )
    assert prepared.inputs == (
        "#include <vector>",
        "#include <string>",
        "std::vector<int> v{1, 2};",
        "int x;",
        "#define N 3",
        "int y = N;",
    )


@pytest.mark.parametrize(
    ("cell", "last"),
    [
        ("x", "__kp::show(((x), __kp::Marker{}));"),
        ("int m = 5; m * 2", "int m = 5; __kp::show(((m * 2), __kp::Marker{}));"),
        ('f("a;b")', '__kp::show(((f("a;b")), __kp::Marker{}));'),
        ("std::vector<int>{1, 2}", "__kp::show(((std::vector<int>{1, 2}), __kp::Marker{}));"),
    ],
)
def test_a_trailing_expression_shows_its_value(cell: str, last: str) -> None:
    prepared = prepare(cell)
    assert prepared.shows_value
    assert prepared.inputs[-1] == last


@pytest.mark.parametrize(
    "cell",
    [
        "int x = 1;",
        "struct P { int a; };",
        "#include <map>",
        "if (x) {\n  y();\n}",
        "void f() { return; }",
        "struct Q { int a; }",
    ],
)
def test_declarations_and_statements_show_nothing(cell: str) -> None:
    assert not prepare(cell).shows_value


def test_line_comments_are_dropped_so_joined_lines_survive() -> None:
    assert strip_line_comment('auto s = "a//b"; // note') == 'auto s = "a//b";'
    assert strip_line_comment("char c = '/'; // x") == "char c = '/';"
    prepared = prepare("// Return twice n.\nint twice(int n) {  // doubled\n  return 2 * n;\n}")
    assert "//" not in prepared.inputs[0]
    assert prepared.inputs[0].endswith("return 2 * n; \\\n}")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("int f() {", "incomplete"),
        ("int f() { return 1; }", "complete"),
        ('auto s = "{";', "complete"),
        ("int x = (1 +", "incomplete"),
        ("}", "invalid"),
        ("int x = 1 + \\", "incomplete"),
    ],
)
def test_is_complete(code: str, status: str) -> None:
    assert is_complete(code) == status


def test_diagnostics_find_the_first_error() -> None:
    stderr = (
        "In file included from <<< inputs >>>:1:\n"
        "input_line_6:1:9: warning: unused variable\n"
        "input_line_6:1:9: error: expected expression\n"
        "    1 | int y = ;\n"
        "error: Parsing failed.\n"
    )
    found = diagnostics(stderr)
    assert found.failed and found.first_error == "expected expression"
    assert not diagnostics("runtime error: my own message\n").failed
