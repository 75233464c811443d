// A cell's CodeMirror 6 editor, bound to the cell's shared text (y-codemirror.next: remote
// cursors and selections in each participant's colour, with names).
import { EditorState, Compartment } from "@codemirror/state";
import { EditorView, keymap, lineNumbers, drawSelection, highlightActiveLine, highlightSpecialChars } from "@codemirror/view";
import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import { syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, indentUnit } from "@codemirror/language";
import { oneDarkHighlightStyle, oneDarkTheme } from "@codemirror/theme-one-dark";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";
import { java } from "@codemirror/lang-java";
import { cpp } from "@codemirror/lang-cpp";
import { markdown } from "@codemirror/lang-markdown";
import * as Y from "yjs";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import { checkedAwareness } from "./presence.js";
import { kernelHelp } from "./kernel_help.js";
import { darkTheme } from "./site.js";

// The editor's colours follow the page's theme.
const themed = (dark) => (dark ? [oneDarkTheme, syntaxHighlighting(oneDarkHighlightStyle)] : syntaxHighlighting(defaultHighlightStyle, { fallback: true }));

const MODES = {
  python: () => python(),
  javascript: () => javascript(),
  typescript: () => javascript({ typescript: true }),
  java: () => java(),
  cpp: () => cpp(),
  markdown: () => markdown(),
};

// The code's font size, in px: the reader's choice, kept in this browser.
const CODE_SIZE_KEY = "kernelpad:code-size";
export const CODE_SIZES = [11, 12, 13, 14, 16, 18, 20, 24];
const DEFAULT_CODE_SIZE = 14;

export function codeSize() {
  const chosen = Number(localStorage.getItem(CODE_SIZE_KEY));
  return CODE_SIZES.includes(chosen) ? chosen : DEFAULT_CODE_SIZE;
}

function applyCodeSize() {
  document.documentElement.style.setProperty("--code-size", `${codeSize()}px`);
  document.dispatchEvent(new CustomEvent("kernelpad:code-size"));
}

/** One size larger (``step`` 1) or smaller (-1), within CODE_SIZES; the size now. */
export function changeCodeSize(step) {
  const at = CODE_SIZES.indexOf(codeSize());
  const next = CODE_SIZES[Math.min(CODE_SIZES.length - 1, Math.max(0, at + step))];
  localStorage.setItem(CODE_SIZE_KEY, String(next));
  applyCodeSize();
  return next;
}

applyCodeSize();

export function languageSupport(mode) {
  return (MODES[mode] || (() => []))();
}

/**
 * @param {Y.Text} ytext the cell's source
 * @param {object} options awareness, mode, label, editable (a Compartment's content), keys,
 *   ask (the kernel's completions and documentation: see kernel_help.js)
 */
export function createEditor(parent, ytext, { awareness, mode, label, readOnly, keys, ask }) {
  const language = new Compartment();
  const editable = new Compartment();
  const theme = new Compartment();
  const undoManager = new Y.UndoManager(ytext);
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        keymap.of(keys), // before the defaults: Shift+Enter runs the cell
        ask ? kernelHelp(ask) : [], // before the defaults too: Tab completes after a word
        lineNumbers(),
        highlightSpecialChars(),
        drawSelection(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        indentUnit.of("    "),
        theme.of(themed(darkTheme())),
        keymap.of([...closeBracketsKeymap, ...yUndoManagerKeymap, ...searchKeymap, ...defaultKeymap, indentWithTab]),
        language.of(languageSupport(mode)),
        editable.of(EditorView.editable.of(!readOnly)),
        // Remote carets from checked presences only: a colour goes into a style attribute.
        yCollab(ytext, awareness && checkedAwareness(awareness), { undoManager }),
        // Focusable when read-only too: a click keeps the keyboard in the cell (and its keys
        // out of the page's scrolling, below).
        EditorView.contentAttributes.of({ "aria-label": label, tabindex: "0" }),
        // A read-only editor is no text field to the browser: Space would scroll the page
        // under someone typing in a locked cell.
        EditorView.domEventHandlers({
          keydown: (event, view) => {
            if (view.state.facet(EditorView.editable) || event.ctrlKey || event.metaKey || event.altKey) return false;
            if (event.key === " ") event.preventDefault();
            return false;
          },
        }),
      ],
    }),
  });
  const retheme = (event) => view.dispatch({ effects: theme.reconfigure(themed(event.detail.dark)) });
  document.addEventListener("kernelpad:theme", retheme);
  // Line heights and the gutter are measured: a new font size asks for a new measure.
  const remeasure = () => view.requestMeasure();
  document.addEventListener("kernelpad:code-size", remeasure);
  return {
    view,
    setMode(next) {
      view.dispatch({ effects: language.reconfigure(languageSupport(next)) });
    },
    setReadOnly(value) {
      view.dispatch({ effects: editable.reconfigure(EditorView.editable.of(!value)) });
    },
    setLabel(text) {
      view.contentDOM.setAttribute("aria-label", text);
    },
    destroy() {
      document.removeEventListener("kernelpad:theme", retheme);
      document.removeEventListener("kernelpad:code-size", remeasure);
      view.destroy();
      undoManager.destroy();
    },
  };
}
