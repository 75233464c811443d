// "/": start an interview, then share the join link and keep the host link.
import "./style.css";
import { api, languages } from "./api.js";
import { h } from "./dom.js";
import { saveHostToken, savedName, saveName } from "./identity.js";
import { base, hubUser } from "./site.js";

const app = document.getElementById("app");

function copyButton(text, label) {
  const button = h("button", { type: "button", className: "secondary", "aria-label": label }, "Copy");
  button.addEventListener("click", async () => {
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      // No clipboard (plain http from another machine): select the link for a manual copy.
      const field = button.previousElementSibling;
      field?.select();
    }
    button.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
    setTimeout(() => (button.textContent = "Copy"), 2500);
  });
  return button;
}

function linkRow(id, label, url, help) {
  return h(
    "div",
    { className: "link-row" },
    h("label", { for: id }, label),
    h("div", { className: "link-field" }, h("input", { id, type: "text", readonly: true, value: url }), copyButton(url, `Copy the ${label.toLowerCase()}`)),
    h("p", { className: "help" }, help),
  );
}

function created(session) {
  // The server's own address for links (FRONTEND_URL), as in the join link.
  const hostUrl = `${session.join_url}#host=${encodeURIComponent(session.host_token)}`;
  return h(
    "section",
    { className: "card", "aria-labelledby": "created-title", id: "created" },
    h("h2", { id: "created-title" }, `“${session.session_name}” is ready`),
    linkRow("join-link", "Join link", session.join_url, "Send this to the candidate."),
    linkRow("host-link", "Host link", hostUrl, "Keep this one: it makes you the host (end the interview, see host controls)."),
    h("p", {}, h("a", { href: hostUrl, className: "button", id: "open-pad" }, "Open the interview")),
  );
}

async function main() {
  // Logged in through JupyterHub, the interviewer is the Hub user: the server records that name.
  const nameInput = hubUser
    ? h("input", { id: "host-name", name: "host_name", readonly: true, value: hubUser, "aria-describedby": "hub-user" })
    : h("input", { id: "host-name", name: "host_name", required: true, maxlength: 100, autocomplete: "name", value: savedName() });
  const titleInput = h("input", { id: "session-name", name: "session_name", maxlength: 200, placeholder: "Interview with …" });
  const languageSelect = h("select", { id: "language", name: "initial_language" });
  // Where the notebook starts: blank (the language's template), a question, or a file.
  const questionSelect = h("select", { id: "question", name: "question_id", "aria-describedby": "question-help" }, h("option", { value: "" }, "A blank notebook"));
  const questionHelp = h("p", { className: "help", id: "question-help" });
  const fileInput = h("input", { id: "notebook-file", type: "file", accept: ".ipynb,application/x-ipynb+json" });
  const questions = new Map();
  const status = h("p", { className: "error", role: "alert", id: "form-error" });
  const submit = h("button", { type: "submit" }, "Start the interview");
  const form = h(
    "form",
    { className: "card", "aria-labelledby": "form-title" },
    h("h2", { id: "form-title" }, "Start an interview"),
    h("label", { for: "host-name" }, "Your name"),
    nameInput,
    hubUser ? h("p", { className: "help", id: "hub-user" }, "Signed in through JupyterHub.") : null,
    h("label", { for: "session-name" }, "Title (optional)"),
    titleInput,
    h("label", { for: "language" }, "Language"),
    languageSelect,
    h("label", { for: "question" }, "Start from"),
    questionSelect,
    questionHelp,
    h("label", { for: "notebook-file" }, "Or a notebook file (.ipynb)"),
    fileInput,
    submit,
    status,
  );
  const result = h("div", { "aria-live": "polite" });
  app.replaceChildren(
    h("header", { className: "topbar" }, h("h1", {}, "kernelpad"), h("a", { href: `${base}docs` }, "API docs")),
    h("main", { className: "home" }, h("p", { className: "lead" }, "A shared notebook for coding interviews, running real Jupyter kernels."), form, result),
  );
  questionSelect.addEventListener("change", () => {
    const question = questions.get(questionSelect.value);
    const tests = question?.tests ? ` · ${question.tests} test${question.tests === 1 ? "" : "s"}, ${question.points} point${question.points === 1 ? "" : "s"} (Grade runs them, hidden ones too)` : "";
    questionHelp.textContent = question ? `${question.description}${tests}` : "";
    // A question is in its own language.
    if (question?.language) languageSelect.value = question.language;
  });
  // Once an interview is started, the button stays off until the form is changed: a double
  // click (or a second click while the first is answered) must not start two.
  let started = false;
  form.addEventListener("input", () => {
    if (!started) return;
    started = false;
    submit.disabled = false;
    submit.textContent = "Start the interview";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (started || submit.disabled) return;
    status.textContent = "";
    submit.disabled = true;
    try {
      const body = { host_name: nameInput.value.trim(), initial_language: languageSelect.value };
      if (titleInput.value.trim()) body.session_name = titleInput.value.trim();
      const file = fileInput.files[0];
      if (file && questionSelect.value) throw new Error("Start from a question or from a file, not both.");
      if (questionSelect.value) body.question_id = questionSelect.value;
      if (file) {
        try {
          body.notebook = JSON.parse(await file.text());
        } catch {
          throw new Error(`${file.name} is not a notebook: it is not JSON.`);
        }
      }
      const session = await api("/sessions", { method: "POST", body });
      saveName(session.host_name);
      saveHostToken(session.session_id, session.host_token);
      result.replaceChildren(created(session));
      started = true;
      submit.textContent = "Interview started";
      document.getElementById("open-pad").focus();
    } catch (error) {
      status.textContent = error.message;
    } finally {
      submit.disabled = started;
    }
  });
  // The form is ready first (a click before the lists arrive must not submit it natively),
  // and can be sent once they have.
  submit.disabled = true;
  try {
    for (const language of await languages()) {
      languageSelect.append(h("option", { value: language.id }, language.name));
    }
    for (const question of (await api("/questions")).questions) {
      questions.set(question.id, question);
      const language = languageSelect.querySelector(`option[value="${CSS.escape(question.language)}"]`);
      // A broken question is listed, with why, so that its author can mend it.
      questionSelect.append(
        question.broken
          ? h("option", { value: question.id, disabled: true, title: question.broken }, `${question.title} (broken: ${question.broken.slice(0, 80)})`)
          : language
            ? h("option", { value: question.id }, `${question.title} (${language.textContent})${question.tests ? " · with tests" : ""}`)
            : h("option", { value: question.id, disabled: true }, `${question.title} (its language is not available here)`),
      );
    }
  } catch (error) {
    status.textContent = error.message;
  }
  submit.disabled = false;
  // Where to start, unless the reader has started already (typing in a field while the
  // languages loaded): the keyboard is not taken from under them.
  if (!document.activeElement || document.activeElement === document.body) (hubUser ? languageSelect : nameInput).focus();
}

main();
