"""Questions with tests: nbgrader's format, the grading of a notebook, and its record."""
