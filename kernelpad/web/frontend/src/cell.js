// One cell of the pad: its toolbar, its editor, and (code cells) its count, outputs and any
// input request; (Markdown cells) the rendered text when nobody here is editing it.
import * as Y from "yjs";
import { h } from "./dom.js";
import { createEditor } from "./editor.js";
import { markdownHtml, renderOutput } from "./outputs.js";

export function cellLanguage(cell, fallback) {
  const metadata = cell.get("metadata");
  const ours = metadata instanceof Y.Map ? metadata.get("kernelpad") : metadata?.kernelpad;
  const language = ours instanceof Y.Map ? ours.get("language") : ours?.language;
  return typeof language === "string" && language ? language : fallback;
}

export function setCellLanguage(cell, language) {
  let metadata = cell.get("metadata");
  if (!(metadata instanceof Y.Map)) {
    metadata = new Y.Map();
    cell.set("metadata", metadata);
  }
  const ours = metadata.get("kernelpad");
  const current = ours instanceof Y.Map ? ours.toJSON() : ours || {};
  metadata.set("kernelpad", { ...current, language });
}

/** The cell's nbgrader marks (a plain object), if it has any. */
export function nbgraderOf(cell) {
  const metadata = cell.get("metadata");
  const marks = metadata instanceof Y.Map ? metadata.get("nbgrader") : metadata?.nbgrader;
  const plain = marks instanceof Y.Map ? marks.toJSON() : marks;
  return plain && typeof plain === "object" ? plain : null;
}

export class CellView {
  constructor(cell, pad) {
    this.cell = cell;
    this.pad = pad;
    this.id = String(cell.get("id") || "");
    this.scheduled = false;
    this.editing = false;
    this.builtSource = this.source; // a cell whose text is replaced gets a new view
    this.build();
    this.observer = (events) => this.changed(events);
    cell.observeDeep(this.observer);
    this.render();
    this.setReadOnly(pad.ended || !pad.mayEdit, pad.ended || !pad.mayRun);
  }

  get type() {
    return this.cell.get("cell_type") === "markdown" ? "markdown" : "code";
  }

  get language() {
    return cellLanguage(this.cell, this.pad.defaultLanguage);
  }

  /** One of the question's tests: its marks, else null. */
  get test() {
    const marks = nbgraderOf(this.cell);
    return marks?.grade && !marks.solution && this.type === "code" ? marks : null;
  }

  /** The host's alone (the server's rule: sessions/document.py locked_cell). */
  get locked() {
    const marks = nbgraderOf(this.cell);
    if (marks?.solution) return false;
    if (marks?.grade || marks?.locked) return true;
    const metadata = this.cell.get("metadata");
    return (metadata instanceof Y.Map ? metadata.get("editable") : metadata?.editable) === false;
  }

  get source() {
    const source = this.cell.get("source");
    return source instanceof Y.Text ? source : null;
  }

  build() {
    const pad = this.pad;
    this.count = h("span", { className: "count", "aria-label": "Execution count" });
    this.languageSelect = h(
      "select",
      { "aria-label": "Cell language", onchange: () => setCellLanguage(this.cell, this.languageSelect.value) },
      pad.languages.map((language) => h("option", { value: language.id }, language.name)),
    );
    this.typeSelect = h(
      "select",
      { "aria-label": "Cell type", onchange: () => pad.setType(this, this.typeSelect.value) },
      h("option", { value: "code" }, "Code"),
      h("option", { value: "markdown" }, "Markdown"),
    );
    this.tag = h("span", { className: "cell-tag", hidden: true });
    this.result = h("span", { className: "test-result", role: "status", hidden: true });
    this.runButton = h("button", { type: "button", className: "run", "aria-label": "Run cell (Shift+Enter)", title: "Run cell (Shift+Enter)", onclick: () => pad.run(this) }, "▶ Run");
    this.stopButton = h("button", { type: "button", className: "stop", "aria-label": "Stop this cell's run", title: "Stop this cell's run", hidden: true, onclick: () => pad.stop(this) }, "■ Stop");
    this.toolbar = h(
      "div",
      { className: "cell-toolbar", role: "toolbar", "aria-label": "Cell" },
      this.count,
      this.runButton,
      this.stopButton,
      this.typeSelect,
      this.languageSelect,
      this.tag,
      this.result,
      h("span", { className: "spacer" }),
      h("button", { type: "button", className: "icon move", "aria-label": "Move cell up", title: "Move cell up", onclick: () => pad.move(this, -1) }, "↑"),
      h("button", { type: "button", className: "icon move", "aria-label": "Move cell down", title: "Move cell down", onclick: () => pad.move(this, 1) }, "↓"),
      h("button", { type: "button", className: "icon move", "aria-label": "Add a cell below", title: "Add a cell below", onclick: () => pad.addCell("code", this) }, "+"),
      h("button", { type: "button", className: "icon danger", "aria-label": "Delete cell", title: "Delete cell", onclick: () => pad.deleteCell(this) }, "✕"),
    );
    this.editorBox = h("div", { className: "editor" });
    this.preview = h("div", {
      className: "markdown-preview",
      tabindex: 0,
      role: "button",
      "aria-label": "Markdown cell: press Enter to edit",
      ondblclick: () => this.edit(),
      onkeydown: (event) => {
        // Enter on a link in the text follows the link.
        if (event.key === "Enter" && event.target === this.preview) {
          event.preventDefault();
          this.edit();
        }
      },
    });
    this.input = h("div", { className: "input-request" });
    this.notices = h("ul", { className: "notices", "aria-live": "polite" });
    this.outputs = h("div", { id: `outputs-${this.id}`, className: "outputs", role: "group", "aria-label": "Cell output" });
    // Hiding a long output is this reader's alone: it changes nothing for the others.
    this.collapseButton = h(
      "button",
      { type: "button", className: "collapse-output", hidden: true, "aria-expanded": "true", "aria-controls": `outputs-${this.id}`, onclick: () => this.toggleOutput() },
      "Hide output",
    );
    this.element = h("section", { className: "cell", "data-cell-id": this.id }, this.toolbar, this.editorBox, this.preview, this.input, this.notices, this.collapseButton, this.outputs);
    // Interrupt and Restart act on the language of the cell last worked in.
    this.element.addEventListener("focusin", () => {
      pad.focused = this;
      pad.updateKernelControls();
    });
    const source = this.source;
    if (source) {
      this.editor = createEditor(this.editorBox, source, {
        awareness: pad.awareness,
        mode: this.mode(),
        label: "Cell source",
        readOnly: pad.ended || !pad.mayEdit,
        keys: [
          { key: "Shift-Enter", run: () => (pad.run(this, { next: true }), true) },
          { key: "Mod-Enter", run: () => (pad.run(this), true) },
        ],
        // A Markdown cell has no kernel to ask.
        ask: (kind, code, cursor) =>
          this.type === "code" ? pad.ask(kind, { code, cursor_pos: cursor, language: this.language }) : Promise.resolve(null),
      });
      this.editor.view.contentDOM.addEventListener("blur", () => {
        // Leaving the window is not leaving the cell.
        if (this.type === "markdown" && document.hasFocus()) {
          this.editing = false;
          this.render();
        }
      });
    }
  }

  mode() {
    return this.type === "markdown" ? "markdown" : this.language;
  }

  changed(events) {
    for (const event of events) {
      if (event.target === this.cell && event.keysChanged.has("source")) return this.pad.refresh();
      // Typing in a code cell, or in a Markdown cell being edited here, needs nothing redrawn.
      const typing = event.target !== this.cell && event.path[0] === "source";
      if (!typing || (this.type === "markdown" && !this.editing)) return this.schedule();
    }
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  edit() {
    if (this.pad.ended || !this.pad.mayEdit) return;
    this.editing = true;
    this.render();
    this.editor?.view.focus();
  }

  focus() {
    if (this.type === "markdown" && !this.editing) this.preview.focus();
    else this.editor?.view.focus();
  }

  render() {
    const markdown = this.type === "markdown";
    const language = this.language;
    this.element.classList.toggle("markdown", markdown);
    this.typeSelect.value = this.type;
    this.languageSelect.value = language;
    this.languageSelect.hidden = markdown;
    this.runButton.hidden = markdown;
    this.count.hidden = markdown;
    this.editor?.setMode(this.mode());
    const name = this.pad.languageName(language);
    this.element.setAttribute("aria-label", markdown ? "Markdown cell" : `${name} cell`);
    this.editor?.setLabel(markdown ? "Markdown source" : `${name} source`);
    const showPreview = markdown && !this.editing;
    this.preview.hidden = !showPreview;
    this.editorBox.hidden = showPreview;
    if (showPreview) {
      const text = this.source?.toString() || "";
      this.preview.innerHTML = text.trim() ? markdownHtml(text) : "<p class='placeholder'>Empty Markdown cell: press Enter to write.</p>";
    }
    if (markdown) {
      this.outputs.replaceChildren();
      return;
    }
    const test = this.test;
    this.tag.hidden = !test && !this.locked;
    this.tag.textContent = test ? `Test · ${test.points ?? 0} pt${test.points === 1 ? "" : "s"}` : "Locked";
    this.tag.title = "Only the interviewer can change this cell";
    const state = this.cell.get("execution_state");
    const count = this.cell.get("execution_count");
    this.count.textContent = state === "running" ? "[*]" : `[${count ?? " "}]`;
    this.element.classList.toggle("busy", state === "running");
    this.stopButton.hidden = state !== "running" || this.pad.ended;
    if (this.pad.focused === this) this.pad.updateKernelControls();
    const outputs = this.cell.get("outputs");
    const list = outputs instanceof Y.Array ? outputs.toJSON() : [];
    this.outputs.replaceChildren(...list.map(renderOutput));
    this.collapseButton.hidden = list.length === 0;
  }

  toggleOutput() {
    const hidden = this.outputs.classList.toggle("collapsed");
    this.collapseButton.textContent = hidden ? "Show output" : "Hide output";
    this.collapseButton.setAttribute("aria-expanded", String(!hidden));
  }

  /** How a run of this test went (everyone sees it). */
  showTest(result) {
    this.result.hidden = false;
    this.result.className = `test-result ${result.passed ? "passed" : "failed"}`;
    this.result.textContent = result.passed ? "✓ Passed" : "✗ Failed";
  }

  /** What happened around a run (time limit, restarted kernel), as the server says it. */
  showNotices(notices) {
    this.notices.replaceChildren(...(notices || []).map((text) => h("li", {}, text)));
  }

  /** Someone's run of this cell asks for input: anyone here may answer. */
  askInput(request) {
    const field = h("input", {
      type: request.password ? "password" : "text",
      "aria-label": request.prompt || "Input for the running code",
      autocomplete: "off",
    });
    const form = h(
      "form",
      {
        onsubmit: (event) => {
          event.preventDefault();
          this.pad.channel.send("input_reply", { value: field.value, execution_id: request.execution_id });
          this.clearInput(request.execution_id);
        },
      },
      h("label", {}, request.prompt || "Input:", field),
      h("button", { type: "submit" }, "Send"),
    );
    form.dataset.executionId = request.execution_id;
    this.input.replaceChildren(form);
    // Take the keyboard only from nobody, or from this cell: not from someone typing elsewhere.
    const active = document.activeElement;
    if (!active || active === document.body || this.element.contains(active)) field.focus();
  }

  clearInput(executionId) {
    const form = this.input.firstElementChild;
    if (form && (!executionId || form.dataset.executionId === executionId)) this.input.replaceChildren();
  }

  /** No editing (the interview ended, or the host locked editing); no running. */
  setReadOnly(noEditing, noRunning = noEditing) {
    // A locked cell is the host's: a candidate may run it, move it, add a cell below it.
    const mine = !noEditing && !(this.locked && this.pad.role !== "host");
    this.editor?.setReadOnly(!mine);
    for (const control of this.toolbar.querySelectorAll("button, select")) control.disabled = !mine;
    for (const move of this.toolbar.querySelectorAll(".move")) move.disabled = noEditing;
    this.runButton.disabled = this.stopButton.disabled = noRunning;
    if (this.pad.ended) {
      this.stopButton.hidden = true;
      this.input.replaceChildren();
    }
  }

  destroy() {
    this.cell.unobserveDeep(this.observer);
    this.editor?.destroy();
    this.element.remove();
  }
}
