// The panel beside the notebook: the question as everyone reads it and, for the host only, the
// interview clock and private notes. It folds away (the choice is kept in this browser); on a
// narrow screen it starts folded, so that the code comes first.
import { api } from "./api.js";
import { h } from "./dom.js";
import { GradePanel } from "./grading.js";
import { markdownHtml } from "./outputs.js";

const OPEN_KEY = "kernelpad:side-panel";
const MAX_STATEMENT = 20000; // sessions/notebooks.py MAX_STATEMENT

/** "m:ss", or "h:mm:ss" from an hour on. */
export function clockText(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(hours ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class SidePanel {
  /** ``session``: the session as the API gives it; ``say``: how the page tells of a failure. */
  constructor(session, { sessionPath, token, say, setRules }) {
    this.sessionPath = sessionPath;
    this.token = token;
    this.say = say;
    this.host = false;
    this.brief = { statement: session.statement || "", suggested_minutes: session.suggested_minutes ?? null };
    this.startedAt = session.started_at ? Date.parse(session.started_at) : null;

    this.statement = h("div", { className: "statement markdown-preview", id: "statement" });
    this.minutes = h("p", { className: "help", id: "suggested-minutes" });
    this.editButton = h("button", { type: "button", className: "secondary", hidden: true, onclick: () => this.edit() }, "Edit");
    this.editor = this.statementForm();
    this.question = h(
      "section",
      { className: "panel-section", "aria-labelledby": "question-title" },
      h("div", { className: "panel-heading" }, h("h2", { id: "question-title" }, "Question"), this.editButton),
      this.minutes,
      this.statement,
      this.editor,
    );

    this.clock = h("p", { className: "clock", id: "interview-clock", role: "timer", "aria-live": "off" });
    this.clockHelp = h("p", { className: "help", id: "clock-help" });
    this.clockSection = h(
      "section",
      { className: "panel-section", hidden: true, "aria-labelledby": "clock-title" },
      h("h2", { id: "clock-title" }, "Interview clock"),
      this.clock,
      this.clockHelp,
    );

    this.notesField = h("textarea", { id: "notes-text", rows: 8, maxlength: 100000, oninput: () => this.saveNotesSoon() });
    this.notesStatus = h("span", { className: "help", role: "status" });
    this.notesSection = h(
      "section",
      { id: "notes", className: "panel-section notes", hidden: true, "aria-labelledby": "notes-title" },
      h("h2", { id: "notes-title" }, "Private notes"),
      h("label", { for: "notes-text" }, "Only you (the host) ever see these."),
      this.notesField,
      this.notesStatus,
    );

    this.tests = new GradePanel({ sessionPath, token, say, setRules });
    this.element = h("aside", { id: "side-panel", className: "side-panel", "aria-label": "Question and notes" }, this.question, this.tests.element, this.clockSection, this.notesSection);
    this.toggle = h("button", { type: "button", className: "panel-toggle", "aria-controls": "side-panel", onclick: () => this.setOpen(this.element.hidden) }, "Question");
    const chosen = localStorage.getItem(OPEN_KEY);
    this.setOpen(chosen ? chosen === "open" : !window.matchMedia("(max-width: 900px)").matches, false);
    this.render();
  }

  setOpen(open, remember = true) {
    this.element.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
    this.toggle.title = open ? "Hide the question and notes" : "Show the question and notes";
    document.body.classList.toggle("with-side-panel", open);
    if (remember) localStorage.setItem(OPEN_KEY, open ? "open" : "closed");
  }

  /** The host sees the clock and notes and may edit the statement; a candidate only reads. */
  setHost(host) {
    if (host === this.host) return;
    this.host = host;
    this.tests.setHost(host);
    this.clockSection.hidden = this.notesSection.hidden = this.editButton.hidden = !host;
    this.toggle.textContent = host ? "Question & notes" : "Question";
    clearInterval(this.ticking);
    if (host) {
      this.ticking = setInterval(() => this.tick(), 1000);
      this.loadNotes();
    }
    this.render();
  }

  setBrief(brief) {
    this.brief = { statement: brief.statement || "", suggested_minutes: brief.suggested_minutes ?? null };
    this.render();
  }

  /** A candidate joined: the clock starts with the first. */
  candidateJoined() {
    if (this.startedAt === null) this.startedAt = Date.now();
    this.tick();
  }

  render() {
    const { statement, suggested_minutes: minutes } = this.brief;
    if (statement.trim()) this.statement.innerHTML = markdownHtml(statement);
    else this.statement.replaceChildren(h("p", { className: "placeholder" }, this.host ? "No statement yet: Edit to write the question here, for everyone to read beside the code." : "The question is in the notebook."));
    this.minutes.textContent = minutes ? `Suggested time: ${minutes} min` : "";
    this.minutes.hidden = !minutes;
    this.tick();
  }

  tick() {
    if (!this.host) return;
    const minutes = this.brief.suggested_minutes;
    if (this.startedAt === null) {
      this.clock.textContent = "–:––";
      this.clockHelp.textContent = "It starts when the candidate joins.";
      this.clock.classList.remove("over");
      return;
    }
    const elapsed = (Date.now() - this.startedAt) / 1000;
    this.clock.textContent = clockText(elapsed);
    const over = !!minutes && elapsed > minutes * 60;
    this.clock.classList.toggle("over", over);
    this.clockHelp.textContent = minutes ? `${over ? "Over" : "Of"} the ${minutes} min suggested for the question` : "Since the candidate joined";
  }

  statementForm() {
    this.statementField = h("textarea", { id: "statement-text", rows: 10, maxlength: MAX_STATEMENT });
    this.minutesField = h("input", { type: "number", id: "statement-minutes", min: 0, max: 600, step: 1, inputmode: "numeric", placeholder: "none" });
    return h(
      "form",
      {
        className: "statement-form",
        hidden: true,
        onsubmit: (event) => {
          event.preventDefault();
          this.saveStatement();
        },
      },
      h("label", { for: "statement-text" }, "The question, in Markdown: everyone reads it here"),
      this.statementField,
      h("label", { for: "statement-minutes", className: "limit" }, "Suggested minutes ", this.minutesField),
      h("div", { className: "actions" }, h("button", { type: "submit" }, "Save"), h("button", { type: "button", className: "secondary", onclick: () => this.closeEditor() }, "Cancel")),
    );
  }

  edit() {
    this.statementField.value = this.brief.statement;
    this.minutesField.value = this.brief.suggested_minutes ?? "";
    this.editor.hidden = false;
    this.statement.hidden = this.editButton.hidden = true;
    this.statementField.focus();
  }

  closeEditor() {
    this.editor.hidden = true;
    this.statement.hidden = false;
    this.editButton.hidden = !this.host;
  }

  async saveStatement() {
    const minutes = Number(this.minutesField.value) || 0;
    try {
      const session = await api(this.sessionPath, { method: "PATCH", body: { statement: this.statementField.value, suggested_minutes: minutes }, token: this.token });
      this.setBrief(session);
      this.closeEditor();
    } catch (error) {
      this.say(error.message);
    }
  }

  async loadNotes() {
    try {
      this.notesField.value = (await api(`${this.sessionPath}/notes`, { token: this.token })).notes;
    } catch (error) {
      this.say(error.message);
    }
  }

  saveNotesSoon() {
    clearTimeout(this.notesTimer);
    this.notesStatus.textContent = "Editing…";
    this.notesTimer = setTimeout(async () => {
      try {
        await api(`${this.sessionPath}/notes`, { method: "PUT", body: { notes: this.notesField.value }, token: this.token });
        this.notesStatus.textContent = "Saved";
      } catch (error) {
        this.notesStatus.textContent = `Not saved: ${error.message}`;
      }
    }, 600);
  }

  /** The interview ended: what is shown stays, nothing changes any more. */
  stop() {
    clearInterval(this.ticking);
    this.editButton.hidden = true;
    this.notesField.readOnly = true;
    this.tests.gradeButton.disabled = false; // grading needs no live kernel: it may go on
  }
}
