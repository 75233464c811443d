// What the cell's kernel knows, in the editor: completions (Tab after a word, Ctrl+Space
// anywhere) and documentation (Shift+Tab), asked over the JSON socket (`complete`, `inspect`).
// Tab with only whitespace before the cursor still indents, and Shift+Tab there dedents: a
// completion never eats an indentation.
import { autocompletion, acceptCompletion, completionStatus, startCompletion } from "@codemirror/autocomplete";
import { indentLess, indentMore } from "@codemirror/commands";
import { StateEffect, StateField } from "@codemirror/state";
import { EditorView, keymap, showTooltip } from "@codemirror/view";
import { h } from "./dom.js";
import { ansiBlock } from "./outputs.js";

// Jupyter counts the cursor in code points; CodeMirror in UTF-16 units.
const codePoints = (text, end) => [...text.slice(0, end)].length;
function utf16(text, points) {
  let offset = 0;
  for (let n = 0; n < points && offset < text.length; n++) offset += text.codePointAt(offset) > 0xffff ? 2 : 1;
  return offset;
}

const WHY = {
  busy: "The kernel is running code: completions come when the run ends.",
  starting: "The kernel is starting: try again in a moment.",
  timeout: "The kernel did not answer in time.",
};

/** A completion list of one line that explains why there is nothing (and inserts nothing). */
function notice(from, status) {
  const text = WHY[status];
  return text ? { from, filter: false, options: [{ label: " ", displayLabel: text, apply: () => {}, type: "text" }] } : null;
}

function completionSource(ask) {
  return async (context) => {
    const word = context.matchBefore(/[\w$.]*$/);
    if (!context.explicit && !word?.text) return null;
    const code = context.state.doc.toString();
    const answer = await ask("complete", code, codePoints(code, context.pos));
    if (!answer || context.aborted) return null;
    if (answer.status !== "ok") return notice(context.pos, answer.status);
    if (!answer.matches?.length) return null;
    return {
      from: utf16(code, answer.cursor_start),
      to: utf16(code, answer.cursor_end),
      options: answer.matches.map((match) => ({ label: match, type: match.endsWith("(") || match.endsWith("()") ? "function" : "variable" })),
      validFor: /^[\w$]*$/,
    };
  };
}

const showHelp = StateEffect.define();
const helpField = StateField.define({
  create: () => null,
  update(tooltip, transaction) {
    for (const effect of transaction.effects) if (effect.is(showHelp)) return effect.value;
    // Typing or moving on closes it.
    return transaction.docChanged || transaction.selection ? null : tooltip;
  },
  provide: (field) => showTooltip.from(field),
});

function helpTooltip(pos, text) {
  return {
    pos,
    above: true,
    create: () => {
      const dom = h("div", { className: "kernel-help", role: "tooltip" }, ansiBlock(text, "kernel-help-text"));
      return { dom };
    },
  };
}

async function inspect(view, ask) {
  const pos = view.state.selection.main.head;
  const code = view.state.doc.toString();
  const answer = await ask("inspect", code, codePoints(code, pos));
  if (view.state.selection.main.head !== pos || view.state.doc.toString() !== code) return;
  let text = answer?.found ? answer.data?.["text/plain"] || answer.data?.["text/markdown"] : "";
  if (!text) text = answer && answer.status !== "ok" ? WHY[answer.status] || "No documentation." : "No documentation found here.";
  view.dispatch({ effects: showHelp.of(helpTooltip(pos, text)) });
}

const onlyIndentBefore = (state) => {
  const { head, empty } = state.selection.main;
  const line = state.doc.lineAt(head);
  return !empty || /^\s*$/.test(line.text.slice(0, head - line.from));
};

/**
 * The extension. `ask(kind, code, cursorPos)` asks the kernel of the cell (or gives null
 * where there is none: a Markdown cell) and resolves to the server's reply.
 */
export function kernelHelp(ask) {
  return [
    autocompletion({ override: [completionSource(ask)], activateOnTyping: false, icons: false }),
    helpField,
    keymap.of([
      {
        key: "Tab",
        run: (view) => {
          // While a list is open (or coming), Tab is the list's, taken or not: CodeMirror
          // refuses to accept in the list's first 75 ms, and a Tab let through there went on
          // to the editor's own Tab, which indented after the word and closed the list.
          const status = completionStatus(view.state);
          if (status === "active") return acceptCompletion(view) || true;
          if (status === "pending") return true;
          if (onlyIndentBefore(view.state)) return indentMore(view);
          return startCompletion(view);
        },
      },
      {
        key: "Shift-Tab",
        run: (view) => {
          if (onlyIndentBefore(view.state)) return indentLess(view);
          inspect(view, ask);
          return true;
        },
      },
      { key: "Escape", run: (view) => (view.state.field(helpField) ? (view.dispatch({ effects: showHelp.of(null) }), true) : false) },
    ]),
    EditorView.baseTheme({ ".kernel-help": { maxWidth: "min(80ch, 90vw)", maxHeight: "40vh", overflow: "auto", padding: "0.25em 0.5em" } }),
  ];
}
