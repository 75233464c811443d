"""What the people in an interview are told around a run, in their words: why it stopped, what
became of the kernel and its variables."""

from __future__ import annotations

from kernelpad.kernels.languages import InstalledLanguage
from kernelpad.kernels.run_loop import Limits
from kernelpad.kernels.runner import RunReport


def notices_of(report: RunReport, installed: InstalledLanguage, limits: Limits) -> list[str]:
    """What happened around a run, said for the people in the interview."""
    name = installed.language.display_name
    result = report.result
    notices = []
    if report.lost_kernel:
        notices.append(
            f"The {name} kernel had stopped since the last run; this run started a new one:"
            " variables from earlier runs are gone."
        )
    if report.stopped and report.let_go:
        notices.append(
            "The run was stopped: kernelpad is restarting. The kernel and its variables are"
            " kept for when it is back."
        )
    elif report.stopped:
        notices.append("The run was stopped: the session ended or kernelpad is shutting down.")
    elif result.input_missing is not None and result.interrupted:
        notices.append("The run was stopped: it asked for input and no line was left in 'stdin'.")
    elif result.input_missing is not None:
        got = "the end of input" if installed.language.eof else "an empty line (no end of input)"
        notices.append(f"The code asked for more input than 'stdin' had; it got {got}.")
    elif result.timed_out:
        notices.append(
            f"The run passed its time limit of {limits.time_limit:g} s and was interrupted."
        )
    elif result.status == "input_timeout":
        notices.append(
            f"Nobody answered the input request within {limits.input_limit:g} s, so the run was"
            " stopped."
        )
    elif result.status == "output_limit":
        notices.append(
            "The run kept printing past the output limit of"
            f" {limits.max_output} characters and was interrupted."
        )
    if report.kernel_restarted:
        why = "died" if result.status == "kernel_died" else "did not stop when interrupted"
        notices.append(
            f"The {name} kernel {why} and was restarted: variables from earlier runs are gone."
        )
    return notices
