// The notebook's commands on its cells: the list of cell views kept in step with the shared
// document, adding, deleting (and bringing back), moving and retyping cells, and running them
// (one, all, above, below, the tests). The pad (pad.js) holds the state they work on.
import * as Y from "yjs";
import { api } from "./api.js";
import { CellView } from "./cell.js";
import { h } from "./dom.js";

function randomId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export class NotebookCommands {
  viewOf(cellId) {
    if (!cellId) return null;
    for (const view of this.views.values()) if (view.id === cellId) return view;
    return null;
  }

  refresh() {
    // A cell moved (by anyone) is a new cell with the same id: whoever was in it stays in it.
    const held = this.heldFocus();
    const keep = new Set();
    const elements = [];
    this.cells.forEach((cell) => {
      if (!(cell instanceof Y.Map)) return;
      let view = this.views.get(cell);
      if (view && view.builtSource !== view.source) {
        view.destroy();
        view = null;
      }
      if (!view) {
        view = new CellView(cell, this);
        this.views.set(cell, view);
      }
      keep.add(cell);
      elements.push(view.element);
    });
    for (const [cell, view] of this.views) {
      if (!keep.has(cell)) {
        view.destroy();
        this.views.delete(cell);
      }
    }
    if (elements.length === 0) elements.push(this.emptyState());
    // Moving an element that holds focus would lose it: only touch what is out of place.
    elements.forEach((element, index) => {
      if (this.notebook.children[index] !== element) this.notebook.insertBefore(element, this.notebook.children[index] || null);
    });
    while (this.notebook.children.length > elements.length) this.notebook.lastElementChild.remove();
    const tests = [...this.views.values()].some((view) => view.test);
    this.testsButton.hidden = !tests;
    this.panel.tests.setTests(tests);
    this.updateKernelControls();
    if (held && !this.pendingFocus && !held.view.element.isConnected) this.restoreFocus(held);
    if (elements.length === 1 && !this.views.size && document.activeElement === document.body) {
      this.notebook.querySelector("button")?.focus();
    }
    if (this.pendingFocus) {
      const view = this.viewOf(this.pendingFocus.id);
      const placed = view && (this.pendingFocus.index === undefined || this.indexOf(view) === this.pendingFocus.index);
      if (placed) {
        const target = this.pendingFocus.selector ? view.element.querySelector(this.pendingFocus.selector) : null;
        if (target) target.focus();
        else if (this.pendingFocus.edit) view.edit();
        else view.focus();
        this.pendingFocus = null;
      }
    }
  }

  heldFocus() {
    for (const view of this.views.values()) {
      if (view.editor && view.element.contains(document.activeElement)) {
        const { anchor, head } = view.editor.view.state.selection.main;
        return { view, id: view.id, anchor, head, inEditor: view.editor.view.hasFocus };
      }
    }
    return null;
  }

  restoreFocus(held) {
    const view = this.viewOf(held.id);
    if (!view?.editor || !held.inEditor) return;
    const length = view.editor.view.state.doc.length;
    view.editor.view.focus();
    view.editor.view.dispatch({ selection: { anchor: Math.min(held.anchor, length), head: Math.min(held.head, length) } });
  }

  emptyState() {
    const name = this.languageName(this.defaultLanguage);
    return h(
      "div",
      { className: "empty card" },
      h("p", {}, "This notebook has no cells."),
      h("button", { type: "button", onclick: () => this.addCell("code") }, "Add a code cell"),
      " ",
      h("button", { type: "button", onclick: () => this.insertTemplate() }, `Insert the ${name} template`),
    );
  }

  async insertTemplate() {
    try {
      const { template } = await api(`/languages/${encodeURIComponent(this.defaultLanguage)}/template`);
      this.addCell("code", null, template);
    } catch (error) {
      this.say(error.message);
    }
  }

  newCell(type, text = "") {
    const cell = new Y.Map();
    const id = randomId();
    cell.set("id", id);
    cell.set("cell_type", type);
    cell.set("source", new Y.Text(text));
    const metadata = new Y.Map();
    if (type === "code") {
      metadata.set("kernelpad", { language: this.currentLanguage() });
      cell.set("outputs", new Y.Array());
      cell.set("execution_count", null);
      cell.set("execution_state", "idle");
    }
    cell.set("metadata", metadata);
    return [cell, id];
  }

  indexOf(view) {
    return this.cells.toArray().indexOf(view.cell);
  }

  addCell(type, after = null, text = "") {
    if (this.ended) return;
    const [cell, id] = this.newCell(type, text);
    const index = after ? this.indexOf(after) + 1 : this.cells.length;
    this.pendingFocus = { id, edit: true };
    this.cells.insert(index, [cell]);
  }

  deleteCell(view) {
    const index = this.indexOf(view);
    if (index < 0) return;
    // The server deletes it and remembers it for this participant's undo (bringing a cell
    // back writes its outputs anew, which only the server does).
    if (!this.channel.send("delete_cell", { cell_id: view.id })) {
      this.say("Not connected: the cell was not deleted. Try again in a moment.");
      return;
    }
    const next = this.cells.get(index + 1) || this.cells.get(index - 1);
    if (next instanceof Y.Map) this.pendingFocus = { id: String(next.get("id")) };
    this.say("Cell deleted.", { label: "Undo", run: () => this.undoCell() });
  }

  /** Bring back the cell this participant deleted or moved last (Ctrl+Z outside an editor). */
  undoCell() {
    if (!this.channel.send("undo_cell", {})) this.say("Not connected: nothing was undone. Try again in a moment.");
  }

  move(view, delta) {
    const index = this.indexOf(view);
    const target = index + delta;
    if (index < 0 || target < 0 || target >= this.cells.length) return;
    // Yjs has no move: the cell must be copied, outputs and all, and only the server may
    // write outputs. It moves the cell; the change comes back over the Yjs socket.
    if (!this.channel.send("move_cell", { cell_id: view.id, index: target })) {
      this.say("Not connected: the cell was not moved. Try again in a moment.");
      return;
    }
    // The focus follows the cell once it is at its new place.
    this.pendingFocus = { id: view.id, index: target, selector: `[aria-label="Move cell ${delta < 0 ? "up" : "down"}"]` };
  }

  setType(view, type) {
    this.doc.transact(() => {
      view.cell.set("cell_type", type);
      if (type === "code" && !(view.cell.get("outputs") instanceof Y.Array)) {
        view.cell.set("outputs", new Y.Array());
        view.cell.set("execution_count", null);
      }
      if (type === "markdown") {
        for (const key of ["outputs", "execution_count", "execution_state"]) view.cell.delete(key);
      }
    });
  }

  run(view, { next = false } = {}) {
    if (this.ended) return;
    if (view.type === "code") {
      const sent = this.channel.send("execute", { cell_id: view.id, code: view.source?.toString() ?? "", language: view.language });
      if (!sent) this.say("Not connected: the cell was not run. Try again in a moment.");
    } else {
      view.editing = false;
      view.render();
    }
    if (next) {
      const following = this.cells.get(this.indexOf(view) + 1);
      if (following instanceof Y.Map) this.views.get(following)?.focus();
      else this.addCell("code", view);
    }
  }

  restartAndRunAll() {
    if (this.ended) return;
    // The socket handles one message after the other: the runs come after the new kernel.
    if (!this.channel.send("restart_kernel", { language: this.currentLanguage() })) {
      this.say("Not connected: try again in a moment.");
      return;
    }
    this.runAll();
  }

  /** Empty every code cell's outputs and count (clearing is a participant's to do; writing
   * outputs is only kernelpad's). */
  clearOutputs() {
    if (this.ended || !this.mayEdit) return;
    this.doc.transact(() => {
      for (const cell of this.cells.toArray()) {
        if (!(cell instanceof Y.Map) || cell.get("cell_type") !== "code") continue;
        const outputs = cell.get("outputs");
        if (outputs instanceof Y.Array && outputs.length === 0 && cell.get("execution_count") == null) continue;
        cell.set("outputs", new Y.Array());
        cell.set("execution_count", null);
      }
    });
  }

  /** Run the code cells from ``start`` up to (not including) ``end``, in order. */
  runAll(start = 0, end = this.cells.length) {
    for (const cell of this.cells.toArray().slice(start, end)) {
      const view = this.views.get(cell);
      if (view?.type === "code") this.run(view);
    }
  }

  /** The visible tests, in the shared kernel: every code cell up to the last test, in order
   * (the answers define what the tests check). */
  runTests() {
    const views = this.cells.toArray().map((cell) => this.views.get(cell));
    const last = views.findLastIndex((view) => view?.test);
    if (last >= 0) this.runAll(0, last + 1);
  }

  /** Where the selected cell is, or -1 (and the reader is told) if no cell is selected. */
  selectedIndex() {
    const at = this.focused && this.views.has(this.focused.cell) ? this.indexOf(this.focused) : -1;
    if (at < 0) this.say("Select a cell first: click into it.");
    return at;
  }

  runAbove() {
    const at = this.selectedIndex();
    if (at >= 0) this.runAll(0, at);
  }

  runBelow() {
    const at = this.selectedIndex();
    if (at >= 0) this.runAll(at);
  }
}
