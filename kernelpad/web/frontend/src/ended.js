// What the interview's page shows when there is no live notebook: a notice (no such interview,
// it cannot be opened) and, once it has ended, what each person may still do: the host replays
// it or takes its notebook; a candidate reads the final notebook if the host lets them.
import { api, download } from "./api.js";
import { h } from "./dom.js";
import { hostToken, savedParticipant } from "./identity.js";
import { markdownHtml, renderOutput } from "./outputs.js";
import { base } from "./site.js";

const root = document.getElementById("app");
const { sessionId } = root.dataset;
const sessionPath = `/sessions/${encodeURIComponent(sessionId)}`;

export function notice(title, text, ...more) {
  root.replaceChildren(
    h("header", { className: "topbar" }, h("h1", {}, h("a", { href: base }, "kernelpad"))),
    h("main", { className: "home" }, h("section", { className: "card" }, h("h2", {}, title), h("p", {}, text), ...more, h("p", {}, h("a", { href: base }, "Start a new interview")))),
  );
}

/** The host saves the interview's notebook; ``say`` tells of a failure. */
export async function downloadNotebook(token, say) {
  try {
    await download(`${sessionPath}/notebook.ipynb`, token, `${sessionId}.ipynb`);
  } catch (error) {
    say(error.message);
  }
}

function joined(value) {
  return Array.isArray(value) ? value.join("") : String(value ?? "");
}

/** A cell of a notebook file, read-only: Markdown rendered, code as text, its outputs. */
function cellOf(cell) {
  const markdown = cell.cell_type === "markdown";
  const element = h("section", { className: `cell final-cell${markdown ? " markdown" : ""}` });
  if (markdown) {
    const preview = h("div", { className: "markdown-preview" });
    preview.innerHTML = markdownHtml(joined(cell.source));
    element.append(preview);
    return element;
  }
  const count = cell.execution_count;
  element.append(
    h("div", { className: "cell-toolbar" }, h("span", { className: "count" }, cell.cell_type === "code" ? `[${count ?? " "}]` : "")),
    h("pre", { className: "replay-source" }, joined(cell.source)),
  );
  if (Array.isArray(cell.outputs) && cell.outputs.length) {
    element.append(h("div", { className: "outputs", role: "group", "aria-label": "Cell output" }, cell.outputs.map(renderOutput)));
  }
  return element;
}

/** The final notebook, for a candidate the host lets read it. */
function finalNotebook(notebook) {
  const ours = notebook.metadata?.kernelpad || {};
  const statement = typeof ours.statement === "string" && ours.statement.trim() ? ours.statement : "";
  const question = h("section", { className: "card statement-card", "aria-labelledby": "question-title" }, h("h2", { id: "question-title" }, "Question"));
  if (statement) {
    const text = h("div", { className: "markdown-preview" });
    text.innerHTML = markdownHtml(statement);
    question.append(text);
  }
  root.replaceChildren(
    h("header", { className: "topbar" }, h("h1", {}, h("a", { href: base, "aria-label": "kernelpad home" }, "kernelpad")), h("span", { className: "title" }, String(ours.title || root.dataset.sessionName || ""))),
    h("div", { className: "banner", role: "status" }, "This interview has ended: here is its final notebook, read-only."),
    h("main", {}, statement ? question : null, h("div", { className: "notebook", "aria-label": "Notebook cells" }, (notebook.cells || []).map(cellOf))),
  );
}

/** What the page shows once the interview has ended. */
export async function afterTheEnd() {
  const token = hostToken(sessionId);
  if (token) {
    const status = h("p", { className: "error", role: "alert" });
    const save = () => downloadNotebook(token, (text) => (status.textContent = text));
    return notice(
      "This interview has ended",
      "You were its host: you can still watch it again, or take its notebook.",
      h("p", {}, h("a", { href: `${base}s/${encodeURIComponent(sessionId)}/replay`, className: "button" }, "Replay the interview"), " ", h("button", { type: "button", className: "secondary", onclick: save }, "Download .ipynb")),
      status,
    );
  }
  const mine = savedParticipant(sessionId);
  if (root.dataset.review === "true" && mine?.participant_token) {
    try {
      return finalNotebook(await api(`${sessionPath}/notebook.ipynb`, { token: mine.participant_token }));
    } catch (error) {
      // Removed from it, or the host changed their mind: the notice below.
    }
  }
  return notice("This interview has ended", "Thank you for taking part. Its notebook stays with the interviewer.");
}
