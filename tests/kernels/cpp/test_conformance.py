"""The C++ kernel against jupyter_kernel_test, the Jupyter protocol's conformance suite.

What the kernel does not do is left unset, so that the suite skips it rather than passes it:
``code_display_data`` (a cell shows text values only), ``code_page_something`` (no pager),
``code_clear_output``, and history (``supported_history_operations``: the kernel keeps none).
"""

from __future__ import annotations

import jupyter_kernel_test


# jupyter_kernel_test ships no type information (no py.typed), so its KernelTests is Any.
class CppKernelConformance(jupyter_kernel_test.KernelTests):  # type: ignore[misc]
    kernel_name = "cpp"
    language_name = "c++"
    file_extension = ".cpp"

    code_hello_world = 'std::cout << "hello, world" << std::endl;'
    code_stderr = 'std::cerr << "a warning" << std::endl;'

    # Matches are compared as sets, so each sample's prefix has one answer in the library.
    completion_samples = [
        {"text": "#include <vector>\nstd::vec", "matches": ["vector"]},
        {"text": "std::string name;\nname.push_b", "matches": ["push_back"]},
        {"text": "int counter = 0;\ncoun", "matches": ["counter"]},
        {"text": "std::string name;\nname."},
    ]
    complete_code_samples = [
        "int x = 1;",
        "int twice(int n) { return 2 * n; }",
        'std::cout << "{" << std::endl;',
        "// a comment (",
    ]
    incomplete_code_samples = [
        "int twice(int n) {",
        "for (int i = 0; i < 3; ++i) {",
        "int x = (1 +",
        "#define SQUARE(x) \\",
    ]
    invalid_code_samples = ["}", "int x = 1);"]

    code_inspect_sample = "std::to_string"
    code_generate_error = "int broken = ;"
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": 'std::string("hi")', "result": '"hi"'},
        {"code": "#include <vector>\nstd::vector<int>{1, 2, 3}", "result": "{1, 2, 3}"},
    ]
