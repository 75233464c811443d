// The pad's bars, built once: the host's controls and the notebook's toolbar. Their elements
// are the pad's fields (pad.js reads and updates them); what they do is the pad's methods.
import { h } from "./dom.js";
import { codeSizeButtons, runMenu, showShortcuts } from "./controls.js";
import { downloadNotebook } from "./ended.js";
import { base } from "./site.js";

/** The host's controls (rules, limits, notebook, replay, end), and the button that folds them
 * away on a narrow screen: they are the pad's (``pad``) fields. */
export function buildHostControls(pad, session) {
    pad.endButton = h("button", { type: "button", className: "danger", hidden: true, onclick: () => pad.endInterview() }, "End interview");
    pad.lockBox = h("input", { type: "checkbox", id: "lock-editing", onchange: () => pad.setRules({ editing_locked: pad.lockBox.checked }) });
    pad.runBox = h("input", { type: "checkbox", id: "candidate-execution", onchange: () => pad.setRules({ candidate_execution: pad.runBox.checked }) });
    pad.reviewBox = h("input", { type: "checkbox", id: "review-after-end", onchange: () => pad.setRules({ review_after_end: pad.reviewBox.checked }) });
    // The interview's limits, within the server's (empty: the server's).
    const limit = (id, max, unit, change) =>
      h("input", {
        type: "number",
        id,
        min: 1,
        max: max || undefined,
        step: 1,
        inputmode: "numeric",
        placeholder: max ? `${max}` : "∞",
        title: max ? `At most ${max} ${unit} on this server; empty: that` : "No limit on this server; empty: none",
        onchange: (event) => {
          const value = Number(event.target.value) || 0;
          if (max && value > max) {
            pad.say(`This server allows at most ${max} ${unit}.`);
            pad.applyRules(pad.rules);
            return;
          }
          pad.setRules(change(value));
        },
      });
    pad.timeLimitBox = limit("time-limit", session.server_time_limit, "s", (value) => ({ time_limit: value }));
    pad.rateBox = limit("runs-per-minute", session.server_runs_per_minute, "runs a minute", (value) => ({ runs_per_minute: value }));
    pad.hostControls = h(
      "div",
      { id: "host-controls", className: "host-controls", role: "group", hidden: true, "aria-label": "Host controls" },
      h("label", { className: "switch" }, pad.lockBox, " Lock editing"),
      h("label", { className: "switch" }, pad.runBox, " Candidates may run code"),
      h("label", { className: "switch", title: "Once the interview has ended, candidates may still open its final notebook, read-only" }, pad.reviewBox, " Candidates see the final notebook"),
      h("label", { className: "limit" }, "Time limit (s) ", pad.timeLimitBox),
      h("label", { className: "limit" }, "Runs a minute ", pad.rateBox),
      h("button", { type: "button", className: "secondary", onclick: () => downloadNotebook(pad.token, (text) => pad.say(text)) }, "Download .ipynb"),
      h("a", { href: `${base}s/${encodeURIComponent(pad.sessionId)}/replay`, target: "_blank", rel: "noopener" }, "Replay"),
      pad.endButton,
    );
    // On a narrow screen the host's controls fold away behind this button (CSS shows it there):
    // the code comes first.
    pad.hostToggle = h(
      "button",
      {
        type: "button",
        className: "host-toggle secondary",
        hidden: true,
        "aria-expanded": "false",
        "aria-controls": "host-controls",
        onclick: () => {
          const open = pad.hostControls.classList.toggle("open");
          pad.hostToggle.setAttribute("aria-expanded", String(open));
        },
      },
      "Host controls",
    );
}

/** The notebook's toolbar: runs, kernels, cells, views. */
export function buildToolbar(pad) {
    pad.kernelList = h("ul", { className: "kernels", "aria-label": "Kernels" });
    pad.testsButton = h("button", { type: "button", "data-runs": true, hidden: true, onclick: () => pad.runTests(), title: "Run the notebook's cells up to its last test, in order" }, "✓ Run tests");
    pad.interruptButton = h("button", { type: "button", "data-runs": true, onclick: () => pad.kernelAction("interrupt") }, "■ Interrupt");
    pad.restartButton = h("button", { type: "button", "data-runs": true, onclick: () => pad.kernelAction("restart_kernel") }, "↻ Restart kernel");
    pad.toolbar = h(
      "div",
      { className: "toolbar", role: "toolbar", "aria-label": "Notebook" },
      h("button", { type: "button", "data-runs": true, onclick: () => pad.runAll(), "aria-label": "Run all cells" }, "▶▶ Run all"),
      pad.testsButton,
      runMenu([
        ["Run all cells above the selected one", () => pad.runAbove()],
        ["Run the selected cell and all below", () => pad.runBelow()],
        ["Restart the kernel and run all cells", () => pad.restartAndRunAll()],
      ]),
      pad.interruptButton,
      pad.restartButton,
      h("button", { type: "button", "data-edits": true, onclick: () => pad.addCell("code"), "aria-label": "Add a code cell at the end" }, "+ Code"),
      h("button", { type: "button", "data-edits": true, onclick: () => pad.addCell("markdown"), "aria-label": "Add a Markdown cell at the end" }, "+ Markdown"),
      h("button", { type: "button", "data-edits": true, onclick: () => pad.clearOutputs(), "aria-label": "Clear all outputs" }, "Clear outputs"),
      h("button", { type: "button", className: "icon", onclick: () => showShortcuts(), "aria-label": "Keyboard shortcuts", title: "Keyboard shortcuts (?)" }, "?"),
      codeSizeButtons(),
      pad.panel.toggle,
      pad.kernelList,
    );
}
