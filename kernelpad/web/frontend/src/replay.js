// "/s/{session_id}/replay": the host watches the interview again. The server sends every change
// of the shared notebook (a Yjs update, with its time and author) and every run; the notebook
// at any moment is those updates applied in order, so what is shown is exactly what was there.
import "./style.css";
import * as Y from "yjs";
import { api } from "./api.js";
import { h } from "./dom.js";
import { COLOURS, hostToken, takeHostTokenFromUrl } from "./identity.js";
import { markdownHtml, renderOutput } from "./outputs.js";
import { base } from "./site.js";

const root = document.getElementById("app");
const sessionId = root.dataset.sessionId;
const SPEEDS = [1, 2, 4, 8, 16, 32];
// With "skip idle gaps", a pause longer than this (in interview time) is cut short.
const IDLE_GAP = 3;

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(hours ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${mm}:${ss}` : `${mm}:${ss}`;
}

function bytes(base64) {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** Who wrote what: the ranges of Yjs ids each edit created, by Yjs client. An edit made
 * through the JSON protocol is applied by the server's own Yjs client, so the author is that
 * of the edit, not of the client id. */
class Authors {
  constructor() {
    this.ranges = new Map(); // Yjs client id -> [[first clock, end clock, author], ...]
  }

  learn(update, author) {
    for (const struct of Y.decodeUpdate(update).structs) {
      if (!(struct instanceof Y.Item)) continue;
      const list = this.ranges.get(struct.id.client) || [];
      list.push([struct.id.clock, struct.id.clock + struct.length, author]);
      this.ranges.set(struct.id.client, list);
    }
  }

  /** Call once every edit is learnt: each client's ranges in clock order, to search. */
  sort() {
    for (const list of this.ranges.values()) list.sort((a, b) => a[0] - b[0]);
  }

  /** The authors of ``length`` characters from Yjs id ``id``, as [offset, length, author]
   * pieces: Yjs merges neighbouring text of one client, and the server's client writes for
   * every JSON-protocol author, so one item may hold several people's text. */
  pieces(id, length) {
    const list = this.ranges.get(id.client) || [];
    let low = 0;
    let high = list.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (list[middle][1] <= id.clock) low = middle + 1;
      else high = middle;
    }
    const pieces = [];
    let clock = id.clock;
    const end = id.clock + length;
    for (let i = low; i < list.length && clock < end; i += 1) {
      const [from, to, author] = list[i];
      if (from > clock) {
        pieces.push([clock - id.clock, Math.min(from, end) - clock, null]);
        clock = Math.min(from, end);
      }
      if (clock >= end) break;
      const stop = Math.min(to, end);
      if (stop > clock) pieces.push([clock - id.clock, stop - clock, author]);
      clock = Math.max(clock, stop);
    }
    if (clock < end) pieces.push([clock - id.clock, end - clock, null]);
    return pieces;
  }
}

function lowest(values) {
  return values.reduce((a, b) => Math.min(a, b), Infinity);
}

function highest(values) {
  return values.reduce((a, b) => Math.max(a, b), -Infinity);
}

class Replay {
  constructor(timeline) {
    this.timeline = timeline;
    this.edits = timeline.events.filter((event) => event.kind === "edit").map((event) => ({ ...event, update: bytes(event.update) }));
    this.runs = timeline.events.filter((event) => event.kind === "run");
    this.grades = timeline.events.filter((event) => event.kind === "grade");
    this.names = new Map(timeline.participants.map((p) => [p.client_id, p.display_name]));
    // (Not Math.min(...times): a long interview has more events than a call has arguments.)
    const times = timeline.events.map((event) => event.at);
    this.start = Math.min(timeline.started_at, lowest(times));
    this.end = Math.max(timeline.ended_at || 0, highest(times), highest(this.runs.map((run) => run.finished_at || run.at)));
    this.authors = new Authors();
    this.edits.forEach((edit) => this.authors.learn(edit.update, edit.author));
    this.authors.sort();
    // Each author's colour, as the pad showed it (the server gives each participant one of
    // their own); an author it does not list gets one in the order they first acted.
    const given = new Map(timeline.participants.filter((person) => person.colour).map((person) => [person.client_id, person.colour]));
    this.colours = new Map();
    for (const event of [...this.edits, ...this.runs].sort((a, b) => a.at - b.at)) {
      if (event.author && !this.colours.has(event.author)) this.colours.set(event.author, given.get(event.author) || COLOURS[this.colours.size % COLOURS.length]);
    }
    this.reset();
    this.playing = false;
    this.speed = 1;
    this.skipIdle = true;
    this.layout();
    this.seek(this.end);
  }

  /** When a run's end is in the notebook: kernelpad writes its count and state (and the last
   * outputs) just after the kernel finished, in the edits that follow ``finished_at``. */
  doneAt(run) {
    const finished = run.finished_at || run.at;
    let at = finished;
    for (const edit of this.edits) {
      if (edit.at < finished) continue;
      if (edit.author || edit.at > finished + 1) break;
      at = edit.at;
    }
    return at;
  }

  reset() {
    this.doc = new Y.Doc();
    this.applied = 0;
    this.latest = -Infinity; // the time of the latest edit applied
  }

  /** The notebook as it was at ``at``: the edits in their stored order, up to the first one
   * made after ``at`` (as the server rebuilds it); forward by applying the next ones,
   * backward by starting again. */
  seek(at) {
    this.position = Math.min(Math.max(at, this.start), this.end);
    if (this.latest > this.position) this.reset();
    while (this.applied < this.edits.length && this.edits[this.applied].at <= this.position) {
      Y.applyUpdate(this.doc, this.edits[this.applied].update);
      this.latest = Math.max(this.latest, this.edits[this.applied].at);
      this.applied += 1;
    }
    this.scrubber.value = String(Math.round((this.position - this.start) * 1000));
    this.time.textContent = `${clock(this.position - this.start)} / ${clock(this.end - this.start)}`;
    const graded = this.grades.filter((grade) => grade.at <= this.position).pop();
    this.score.textContent = graded ? `Score: ${graded.score} of ${graded.max_score} points (graded at ${clock(graded.at - this.start)})` : "Not graded yet";
    this.render();
  }

  layout() {
    this.playButton = h("button", { type: "button", id: "play", onclick: () => this.toggle() }, "Play");
    this.speedSelect = h(
      "select",
      { id: "speed", "aria-label": "Speed", onchange: () => (this.speed = Number(this.speedSelect.value)) },
      SPEEDS.map((speed) => h("option", { value: speed }, `${speed}×`)),
    );
    this.skipBox = h("input", { type: "checkbox", id: "skip-idle", checked: true, onchange: () => (this.skipIdle = this.skipBox.checked) });
    this.scrubber = h("input", {
      type: "range",
      id: "scrubber",
      "aria-label": "Time in the interview",
      min: 0,
      max: Math.round((this.end - this.start) * 1000),
      step: "any",
      oninput: () => this.seek(this.start + Number(this.scrubber.value) / 1000),
    });
    this.time = h("span", { id: "replay-time", className: "help", role: "timer", "aria-live": "off" });
    // The score as it stood at this moment: the last grading before it.
    this.score = h("span", { id: "replay-score", className: "help", hidden: this.grades.length === 0 });
    const span = Math.max(this.end - this.start, 0.001);
    const marks = h(
      "ol",
      { className: "run-marks", "aria-label": "Runs" },
      this.runs.map((run) =>
        h(
          "li",
          { style: `left: ${(100 * (run.at - this.start)) / span}%` },
          h(
            "button",
            {
              type: "button",
              className: `run-mark ${run.status === "ok" ? "" : "failed"}`,
              title: `${clock(run.at - this.start)} ${run.language}: ${run.status}`,
              "aria-label": `Run at ${clock(run.at - this.start)}, ${run.language}, ${run.status}`,
              onclick: () => this.seek(this.doneAt(run)),
            },
            "",
          ),
        ),
      ),
    );
    const gradings = h(
      "ol",
      { className: "run-marks grade-marks", "aria-label": "Gradings", hidden: this.grades.length === 0 },
      this.grades.map((grade) =>
        h(
          "li",
          { style: `left: ${(100 * (grade.at - this.start)) / span}%` },
          h(
            "button",
            {
              type: "button",
              className: "grade-mark",
              title: `${clock(grade.at - this.start)} graded: ${grade.score} of ${grade.max_score}`,
              "aria-label": `Graded at ${clock(grade.at - this.start)}: ${grade.score} of ${grade.max_score} points`,
              onclick: () => this.seek(grade.at),
            },
            "",
          ),
        ),
      ),
    );
    // The legend names those who wrote or ran something.
    const people = this.timeline.participants.filter((person) => this.colours.has(person.client_id)).map((person) =>
      h("li", {}, h("span", { className: "swatch", style: `background: ${this.colours.get(person.client_id)}` }), ` ${person.display_name}${person.role === "host" ? " (host)" : ""}`),
    );
    this.notebook = h("div", { className: "replay-notebook", "aria-live": "off" });
    root.replaceChildren(
      h(
        "header",
        { className: "topbar" },
        h("h1", {}, h("a", { href: base }, "kernelpad")),
        h("strong", {}, `Replay: ${this.timeline.session_name}`),
        h("a", { href: `${base}s/${encodeURIComponent(sessionId)}` }, "Back to the interview"),
      ),
      h(
        "section",
        { className: "toolbar replay-controls", "aria-label": "Playback" },
        this.playButton,
        h("label", { for: "speed" }, "Speed "),
        this.speedSelect,
        h("label", { className: "switch" }, this.skipBox, " Skip idle gaps"),
        this.time,
        this.score,
      ),
      h("div", { className: "scrub" }, this.scrubber, marks, gradings),
      h("ul", { className: "people legend", "aria-label": "Authors" }, people, h("li", {}, h("span", { className: "swatch" }), " kernelpad (the first notebook, outputs)")),
      h("main", {}, this.notebook),
    );
  }

  toggle() {
    if (this.playing) return this.pause();
    if (this.position >= this.end) this.seek(this.start);
    this.playing = true;
    this.playButton.textContent = "Pause";
    let last = performance.now();
    const tick = (now) => {
      if (!this.playing) return;
      this.advance((now - last) / 1000);
      last = now;
      if (this.position >= this.end) return this.pause();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  /** ``seconds`` of watching pass: the interview moves on ``speed`` times as far, and over a
   * pause longer than IDLE_GAP at once, to just before what comes next, when idle gaps are
   * skipped. */
  advance(seconds) {
    let next = this.position + seconds * this.speed;
    const upcoming = this.edits[this.applied]?.at ?? this.runs.find((run) => run.at > this.position)?.at;
    if (this.skipIdle && upcoming !== undefined && upcoming - this.position > IDLE_GAP) next = Math.max(next, upcoming - 0.5);
    this.seek(next);
  }

  pause() {
    this.playing = false;
    this.playButton.textContent = "Play";
  }

  render() {
    const cells = this.doc.getArray("cells").toArray().filter((cell) => cell instanceof Y.Map);
    this.notebook.replaceChildren(...cells.map((cell) => this.renderCell(cell)));
  }

  renderCell(cell) {
    const markdown = cell.get("cell_type") === "markdown";
    const source = cell.get("source");
    const count = cell.get("execution_count");
    const running = cell.get("execution_state") === "running";
    const element = h("section", { className: `cell replay-cell${markdown ? " markdown" : ""}`, "data-cell-id": String(cell.get("id") || "") });
    const header = h("div", { className: "cell-toolbar" }, h("span", { className: "count" }, markdown ? "" : `[${count ?? " "}]`), running ? h("span", { className: "help" }, "running…") : null);
    const text = h("pre", { className: "replay-source" }, source instanceof Y.Text ? this.spans(source) : String(source ?? ""));
    element.append(header, text);
    if (markdown && source instanceof Y.Text) {
      const preview = h("div", { className: "markdown-preview" });
      preview.innerHTML = markdownHtml(source.toString());
      element.append(preview);
    }
    const outputs = cell.get("outputs");
    if (outputs instanceof Y.Array) {
      element.append(h("div", { className: "outputs", role: "group", "aria-label": "Cell output" }, outputs.toJSON().map(renderOutput)));
    }
    return element;
  }

  /** The text, in its authors' colours (kernelpad's own text, such as a template, uncoloured). */
  spans(ytext) {
    const spans = [];
    for (let item = ytext._start; item !== null; item = item.right) {
      if (item.deleted || !(item.content instanceof Y.ContentString)) continue;
      const text = item.content.str;
      for (const [offset, length, author] of this.authors.pieces(item.id, item.length)) {
        const piece = text.slice(offset, offset + length);
        const last = spans[spans.length - 1];
        if (last && last.author === author) last.text += piece;
        else spans.push({ author, text: piece });
      }
    }
    return spans.map(({ author, text }) =>
      author ? h("span", { className: "authored", style: `color: ${this.colours.get(author)}`, title: this.names.get(author) || author }, text) : text,
    );
  }
}

async function main() {
  takeHostTokenFromUrl(sessionId);
  const token = hostToken(sessionId);
  if (!token) {
    root.replaceChildren(h("main", { className: "home" }, h("section", { className: "card" }, h("h2", {}, "Only the host can replay this interview"), h("p", {}, "Open it from the host link (it keeps the host token in this browser)."))));
    return;
  }
  try {
    // For the curious, in the browser console (and the tests).
    window.kernelpadReplay = new Replay(await api(`/sessions/${encodeURIComponent(sessionId)}/timeline`, { token }));
  } catch (error) {
    root.replaceChildren(h("main", { className: "home" }, h("section", { className: "card" }, h("h2", {}, "The replay cannot be shown"), h("p", { role: "alert" }, error.message))));
  }
}

main();
