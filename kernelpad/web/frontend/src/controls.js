// Controls of the pad's bars that hold no state of the interview: the Run menu, the code's
// font size, the theme.
import { h, showDialog } from "./dom.js";
import { changeCodeSize } from "./editor.js";
import { darkTheme, toggleTheme } from "./site.js";

/** The notebook's other ways to run (a menu button, as JupyterLab's Run menu): ``items`` are
 * [label, action] pairs. Escape or a click elsewhere closes it. */
export function runMenu(items) {
  const button = h("button", { type: "button", "data-runs": true, "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": "run-menu" }, "Run ▾");
  const close = (focus) => {
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focus) button.focus();
  };
  const menu = h(
    "div",
    {
      id: "run-menu",
      className: "menu card",
      role: "menu",
      hidden: true,
      onkeydown: (event) => {
        const entries = [...menu.querySelectorAll("[role=menuitem]")];
        const at = entries.indexOf(document.activeElement);
        if (event.key === "Escape") close(true);
        else if (event.key === "ArrowDown") entries[(at + 1) % entries.length].focus();
        else if (event.key === "ArrowUp") entries[(at - 1 + entries.length) % entries.length].focus();
        else return;
        event.preventDefault();
      },
    },
    items.map(([label, action]) => h("button", { type: "button", role: "menuitem", onclick: () => (close(true), action()) }, label)),
  );
  button.addEventListener("click", () => {
    const open = menu.hidden;
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) menu.querySelector("[role=menuitem]").focus();
  });
  // The selected cell stays selected: the menu takes no focus from it on a mouse press.
  button.addEventListener("mousedown", (event) => event.preventDefault());
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !button.contains(event.target) && !menu.contains(event.target)) close(false);
  });
  return h("span", { className: "menu-anchor" }, button, menu);
}

/** The code's font size: smaller, larger (kept in this browser). */
export function codeSizeButtons() {
  const status = h("span", { className: "visually-hidden", role: "status" });
  const change = (step) => (status.textContent = `Code size ${changeCodeSize(step)} px`);
  return h(
    "span",
    { className: "code-size", role: "group", "aria-label": "Code size" },
    h("button", { type: "button", className: "icon", onclick: () => change(-1), "aria-label": "Smaller code", title: "Smaller code" }, "A−"),
    h("button", { type: "button", className: "icon", onclick: () => change(1), "aria-label": "Larger code", title: "Larger code" }, "A+"),
    status,
  );
}

/** The light or dark theme, for this browser: a button that says which it switches to. */
export function themeButton() {
  const button = h("button", { type: "button", className: "theme-toggle icon", onclick: () => toggleTheme() });
  const show = () => {
    const label = darkTheme() ? "Use the light theme" : "Use the dark theme";
    button.textContent = darkTheme() ? "☀" : "☾";
    button.setAttribute("aria-label", label);
    button.title = label;
  };
  document.addEventListener("kernelpad:theme", show);
  show();
  return button;
}

/** The keyboard shortcuts sheet (? or the toolbar's button). */
export function showShortcuts() {
  const rows = [
    ["Shift+Enter", "Run the cell, go to the next"],
    ["Ctrl+Enter", "Run the cell"],
    ["Tab (after a word)", "Complete, from the kernel"],
    ["Ctrl+Space", "Complete, anywhere"],
    ["Shift+Tab", "The kernel's documentation of what is at the cursor"],
    ["Tab / Shift+Tab", "At the start of a line: indent, dedent"],
    ["Ctrl+Z", "In a cell: undo your typing. Outside: bring back the cell you deleted or moved"],
    ["Escape", "Close a list or the documentation"],
    ["?", "This list"],
  ];
  showDialog(
    "Keyboard shortcuts",
    h("table", { className: "shortcuts" }, h("tbody", {}, ...rows.map(([keys, what]) => h("tr", {}, h("th", { scope: "row" }, h("kbd", {}, keys)), h("td", {}, what))))),
  );
}
