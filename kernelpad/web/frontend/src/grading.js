// The question's tests, in the side panel. The host grades (the notebook run from the start in
// fresh kernels, with every test, hidden ones too) and sees each test's result; a candidate sees
// the score only, and only if the host shares it. What the page shows is what the server sent
// to it: a candidate's page never has the hidden tests to show.
import { api } from "./api.js";
import { h } from "./dom.js";

function points(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/0+$/, "").replace(/\.$/, "");
}

function timeOf(at) {
  const date = typeof at === "number" ? new Date(at * 1000) : new Date(at);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class GradePanel {
  constructor({ sessionPath, token, say, setRules }) {
    this.sessionPath = sessionPath;
    this.token = token;
    this.say = say;
    this.host = false;
    this.latest = null; // the last grading shown (its id)
    this.gradeButton = h("button", { type: "button", hidden: true, onclick: () => this.grade() }, "Grade");
    this.status = h("p", { className: "help", role: "status" });
    this.shareBox = h("input", { type: "checkbox", id: "share-score", onchange: () => setRules({ share_score: this.shareBox.checked }) });
    this.share = h("label", { className: "switch", hidden: true }, this.shareBox, " Show candidates the score");
    this.score = h("p", { className: "score", id: "grade-score" });
    this.results = h("table", { className: "grade-results", hidden: true, "aria-label": "Test results" });
    this.help = h("p", { className: "help" }, "Run tests (in the toolbar) runs the notebook's visible tests in the shared kernel.");
    this.element = h(
      "section",
      { className: "panel-section", id: "tests-section", hidden: true, "aria-labelledby": "tests-title" },
      h("div", { className: "panel-heading" }, h("h2", { id: "tests-title" }, "Tests"), this.gradeButton),
      this.help,
      this.share,
      this.status,
      this.score,
      this.results,
    );
  }

  /** Shown once the notebook has tests; the host's part for the host only. */
  setTests(has) {
    this.element.hidden = !has;
  }

  async setHost(host) {
    if (host === this.host) return;
    this.host = host;
    this.gradeButton.hidden = this.share.hidden = !host;
    this.help.textContent = host
      ? "Grade runs the notebook from the start in new kernels, then every test, hidden ones too. Only you see the results."
      : "Run tests (in the toolbar) runs the visible tests in the shared kernel.";
    if (!host) return;
    try {
      const { grades } = await api(`${this.sessionPath}/grades`, { token: this.token });
      if (grades.length) this.showGrade(grades[grades.length - 1]);
    } catch (error) {
      this.say(error.message);
    }
  }

  setShared(shared) {
    this.shareBox.checked = !!shared;
  }

  async grade() {
    this.gradeButton.disabled = true;
    this.status.textContent = "Grading: running the notebook in new kernels…";
    try {
      this.showGrade(await api(`${this.sessionPath}/grades`, { method: "POST", token: this.token }));
    } catch (error) {
      this.status.textContent = "";
      this.say(error.message);
    } finally {
      this.gradeButton.disabled = false;
    }
  }

  /** A grading (the host's pages only: the REST answer, or another of the host's pages'). */
  showGrade(grade) {
    this.latest = grade.id;
    this.status.textContent = `Graded at ${timeOf(grade.at)}.`;
    this.score.textContent = `${points(grade.score)} of ${points(grade.max_score)} points`;
    this.results.hidden = false;
    this.results.replaceChildren(
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Test"), h("th", { scope: "col" }, "Points"), h("th", { scope: "col" }, "Result"))),
      h(
        "tbody",
        {},
        grade.results.map((result) =>
          h(
            "tr",
            { className: result.passed ? "passed" : "failed" },
            h("th", { scope: "row" }, result.grade_id),
            h("td", {}, `${points(result.score)} / ${points(result.points)}`),
            h("td", {}, result.passed ? "✓ passed" : "✗ failed", result.error ? h("div", { className: "why" }, result.error) : null),
          ),
        ),
      ),
    );
  }

  /** A candidate's page: the score of a grading the host shares. */
  showScore(score) {
    this.status.textContent = "The interviewer graded the notebook.";
    this.score.textContent = `${points(score.score)} of ${points(score.max_score)} points`;
  }
}
