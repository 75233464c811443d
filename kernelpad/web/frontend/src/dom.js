// Building elements without innerHTML: text is always text.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "className") element.className = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/**
 * Ask before doing what cannot be taken back: a modal dialog with the question, what it
 * means, and a button for each answer. Resolves to true for `confirm`, false otherwise (Escape,
 * Cancel). The focus returns to where it was.
 */
export function confirmDialog(question, meaning, confirm) {
  return new Promise((resolve) => {
    const back = document.activeElement;
    const dialog = h(
      "dialog",
      { className: "confirm card", "aria-labelledby": "confirm-question" },
      h("h2", { id: "confirm-question" }, question),
      h("p", {}, meaning),
      h(
        "form",
        { method: "dialog", className: "actions" },
        h("button", { value: "cancel", className: "secondary", autofocus: true }, "Cancel"),
        h("button", { value: "confirm", className: "danger" }, confirm),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      back?.focus?.();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A modal dialog that only shows something (``content``: elements), with a Close button. */
export function showDialog(title, ...content) {
  const back = document.activeElement;
  const dialog = h(
    "dialog",
    { className: "confirm card", "aria-labelledby": "dialog-title" },
    h("h2", { id: "dialog-title" }, title),
    ...content,
    h("form", { method: "dialog", className: "actions" }, h("button", { value: "close", autofocus: true }, "Close")),
  );
  dialog.addEventListener("close", () => {
    dialog.remove();
    back?.focus?.();
  });
  document.body.append(dialog);
  dialog.showModal();
}
