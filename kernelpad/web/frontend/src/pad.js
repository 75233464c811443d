// "/s/{session_id}": the interview's shared notebook. The document comes over Yjs (cells,
// text, outputs, who is where); runs, kernels, input requests and participants over the JSON
// socket. Both reconnect by themselves.
import "./style.css";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { api, languages as fetchLanguages } from "./api.js";
import { CellView } from "./cell.js";
import { NotebookCommands } from "./notebook.js";
import { buildHostControls, buildToolbar } from "./bars.js";
import { showShortcuts, themeButton } from "./controls.js";
import { Channel } from "./channel.js";
import { ticketedWebSocket } from "./ticketed.js";
import { confirmDialog, h } from "./dom.js";
import { afterTheEnd, notice } from "./ended.js";
import { People, safeColour } from "./people.js";
import { SidePanel } from "./side_panel.js";
import { base, wsBase } from "./site.js";
import { clientId, colourOf, forgetName, hostToken, saveName, savedName, saveParticipant, savedParticipant, takeHostTokenFromUrl } from "./identity.js";

const root = document.getElementById("app");
const { sessionId, sessionName } = root.dataset;

const sessionPath = `/sessions/${encodeURIComponent(sessionId)}`;

function askName() {
  return new Promise((resolve) => {
    const field = h("input", { id: "display-name", required: true, maxlength: 100, autocomplete: "name", value: savedName() });
    const form = h(
      "form",
      {
        className: "card",
        "aria-labelledby": "join-title",
        onsubmit: (event) => {
          event.preventDefault();
          const name = field.value.trim();
          if (!name) return;
          saveName(name);
          resolve(name);
        },
      },
      h("h2", { id: "join-title" }, `Join “${sessionName}”`),
      h("label", { for: "display-name" }, "Your name, as the others will see it"),
      field,
      h("button", { type: "submit" }, "Join"),
    );
    root.replaceChildren(h("header", { className: "topbar" }, h("h1", {}, "kernelpad")), h("main", { className: "home" }, form));
    field.focus();
  });
}

class Pad extends NotebookCommands {
  constructor({ name, languages, session, participant }) {
    super();
    this.sessionId = sessionId;
    this.name = name;
    this.clientId = participant.client_id;
    this.participantToken = participant.participant_token;
    // The server's colour for this participant, no one else's in the interview.
    this.colour = safeColour(participant.colour) || colourOf(participant.client_id);
    this.role = participant.role;
    this.token = hostToken(sessionId);
    this.rules = { editing_locked: session.editing_locked, candidate_execution: session.candidate_execution };
    this.languages = languages;
    this.defaultLanguage = session.language;
    this.ended = false;
    this.views = new Map(); // Y.Map of a cell -> its CellView
    this.focused = null;
    this.kernels = new Map(); // language -> state
    this.running = new Map(); // cell id -> the execution id of its run
    this.questions = new Map(); // request id -> who waits for the kernel's answer
    this.asked = 0;
    this.status = { yjs: "connecting", json: "connecting" };
    this.doc = new Y.Doc();
    this.cells = this.doc.getArray("cells");
    this.layout(session);
  }

  languageName(id) {
    return this.languages.find((language) => language.id === id)?.name || id;
  }

  layout(session) {
    this.connection = h("span", { id: "connection-status", className: "connection", role: "status" }, "Connecting…");
    const say = (text) => this.say(text);
    this.people = new People({ sessionPath, clientId: this.clientId, token: this.token, say });
    this.people.knowRemoved(session.participants || []);
    this.panel = new SidePanel(session, { sessionPath, token: this.token, say, setRules: (change) => this.setRules(change) });
    buildHostControls(this, session);
    buildToolbar(this);
    this.messages = h("div", { className: "messages", role: "alert", "aria-live": "assertive" });
    this.banner = h("div", { className: "banner", hidden: true, role: "status" });
    this.globalInput = h("div", { className: "input-request" });
    this.notebook = h("div", { className: "notebook", "aria-label": "Notebook cells" });
    root.replaceChildren(
      h(
        "header",
        { className: "topbar" },
        h("h1", {}, h("a", { href: base, "aria-label": "kernelpad home" }, "kernelpad")),
        h("span", { className: "title" }, session.session_name),
        this.connection,
        this.people.element,
        themeButton(),
        this.hostToggle,
        this.hostControls,
      ),
      this.banner,
      this.toolbar,
      this.messages,
      h("div", { className: "workspace" }, h("main", {}, this.globalInput, this.notebook), this.panel.element),
    );
    this.updateKernelControls();
  }

  /** A single-use ticket to the Yjs socket: ``token`` goes in a header, never in a URL. */
  async ticket(token) {
    const path = `/sessions/${encodeURIComponent(sessionId)}/tickets`;
    return (await api(path, { method: "POST", body: { client_id: this.clientId }, token })).ticket;
  }

  connect() {
    // No token in the URL: each connection opens with a new ticket (see ticketed.js).
    const params = { client_id: this.clientId, display_name: this.name };
    const token = this.token || this.participantToken;
    const WebSocketPolyfill = token ? ticketedWebSocket(() => this.ticket(token)) : WebSocket;
    this.provider = new WebsocketProvider(`${wsBase}ws/yjs`, sessionId, this.doc, { params, WebSocketPolyfill });
    this.ticketRefusals = 0;
    this.awareness = this.provider.awareness;
    const colour = this.colour;
    this.awareness.setLocalStateField("user", { name: this.name, color: colour, colorLight: `${colour}33`, clientId: this.clientId });
    this.provider.on("status", ({ status }) => {
      if (status === "connected") this.ticketRefusals = 0;
      this.setStatus("yjs", status);
    });
    this.provider.on("sync", (synced) => synced && this.refresh());
    this.provider.on("connection-close", (event) => {
      if (this.ended) return;
      if (event?.code === 4410) this.end(this.ending ? "You ended this interview." : "This interview has ended.");
      else if (event?.code === 4400) this.badName(event.reason);
      else if (event?.code === 4401) this.retryTicket();
      else if (event?.code === 4403 || event?.code === 4404) this.fail(event.reason || "You cannot join this interview.");
      else if (event?.code === 4409) this.outOfStep(event.reason);
    });
    this.cells.observe(() => this.refresh());
    // Ctrl+Z outside an editor (whose own undo is the text's) brings back a deleted or moved cell.
    document.addEventListener("keydown", (event) => {
      const outside = !(event.target instanceof Element && event.target.closest(".cm-editor, input, textarea, select, dialog"));
      if (event.key === "?" && outside && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        showShortcuts();
        return;
      }
      const undo = (event.ctrlKey || event.metaKey) && !event.shiftKey && !event.altKey && event.key.toLowerCase() === "z";
      if (!undo || this.ended || !this.mayEdit) return;
      if (event.target instanceof Element && event.target.closest(".cm-editor, input, textarea, select, dialog")) return;
      event.preventDefault();
      this.undoCell();
    });
    // The code reaches this page over Yjs: no whole text over this socket at every keystroke.
    const join = { session_id: sessionId, client_id: this.clientId, display_name: this.name, code_updates: false };
    if (this.token) join.host_token = this.token;
    if (this.participantToken) join.participant_token = this.participantToken;
    this.channel = new Channel(
      `${wsBase}ws/sessions/${sessionId}`,
      join,
      (type, data) => this.receive(type, data),
      (status, event) => {
        if (this.ended) return; // closed by this page: nothing to tell
        if (status === "closed" && event?.code === 4410) this.end(this.ending ? "You ended this interview." : "This interview has ended.");
        else if (status === "closed") this.fail(event?.reason || "The connection was refused.");
        else this.setStatus("json", status);
      },
    );
  }

  /** The socket refused the ticket (it expired on the way, or the server restarted between
   * giving it and taking it): connect again, with a new one, a little later each time. */
  retryTicket() {
    const delay = Math.min(500 * 2 ** this.ticketRefusals++, 10000);
    setTimeout(() => this.ended || this.provider.connect(), delay);
  }

  /** Ask the kernel of a cell for completions or documentation (`complete`, `inspect`): the
   * answer, or null if there is none within a few seconds (or no connection). */
  ask(kind, data) {
    const id = `q${++this.asked}`;
    return new Promise((resolve) => {
      const answered = (reply) => {
        clearTimeout(timer);
        this.questions.delete(id);
        resolve(reply);
      };
      const timer = setTimeout(() => answered(null), 5000);
      this.questions.set(id, answered);
      if (!this.channel?.send(kind, { ...data, request_id: id })) answered(null);
    });
  }

  setStatus(socket, status) {
    this.status[socket] = status;
    let text = "Reconnecting…";
    let state = "reconnecting";
    if (this.stopped) [text, state] = ["Disconnected", "ended"];
    else if (this.ended) [text, state] = ["Interview ended", "ended"];
    else if (this.status.yjs === "connected" && this.status.json === "connected") [text, state] = ["Connected", "connected"];
    else if (this.status.yjs === "connecting" && this.status.json === "connecting") [text, state] = ["Connecting…", "connecting"];
    this.connection.textContent = text;
    this.connection.dataset.state = state;
    if (this.kernelList) this.updateKernelControls();
  }

  // The JSON socket

  receive(type, data) {
    if (this.ended) return;
    switch (type) {
      case "session_state":
        // A (re)join: what is waiting for input now is all there is.
        for (const view of this.views.values()) view.clearInput();
        this.globalInput.replaceChildren();
        for (const request of data.inputs || []) this.receive("input_request", request);
        this.role = data.role;
        this.hostControls.hidden = this.endButton.hidden = this.hostToggle.hidden = this.role !== "host";
        this.applyRules(data);
        this.people.set(data.participants, this.role);
        this.panel.setHost(this.role === "host");
        this.panel.setBrief(data);
        this.kernelsLost(this.kernels, new Map(Object.entries(data.kernels || {})));
        this.kernels = new Map(Object.entries(data.kernels || {}));
        this.updateKernelControls();
        break;
      case "participant_joined":
        this.people.joined(data);
        if (data.role !== "host") this.panel.candidateJoined();
        break;
      case "participant_left":
        this.people.left(data.client_id);
        break;
      case "session_brief":
        this.panel.setBrief(data);
        break;
      case "grade_finished":
        this.panel.tests.showGrade(data);
        break;
      case "score_shared":
        this.panel.tests.showScore(data);
        break;
      case "complete_reply":
      case "inspect_reply":
        this.questions.get(data.request_id)?.(data);
        break;
      case "kernel_status":
        this.kernels.set(data.language, data.state);
        this.updateKernelControls();
        break;
      case "execution_started":
        if (data.cell_id) this.running.set(data.cell_id, data.execution_id);
        this.viewOf(data.cell_id)?.showNotices([]);
        break;
      case "execution_finished": {
        if (this.running.get(data.cell_id) === data.execution_id) this.running.delete(data.cell_id);
        const view = this.viewOf(data.cell_id);
        if (data.test) view?.showTest(data.test);
        view?.clearInput(data.execution_id);
        view?.showNotices(data.notices);
        if (!view) this.globalInput.replaceChildren();
        break;
      }
      case "input_request":
        (this.viewOf(data.cell_id) || this.globalInputView()).askInput(data);
        break;
      case "input_answered":
        for (const view of this.views.values()) view.clearInput(data.execution_id);
        break;
      case "session_settings":
        this.applyRules(data);
        break;
      case "session_ended":
        if (this.role !== "host" && data.review_after_end === false) {
          this.end("The host ended this interview.");
          notice("This interview has ended", "Thank you for taking part. Its notebook stays with the interviewer.");
        } else this.end(this.ending ? "You ended this interview." : "The host ended this interview.");
        break;
      case "error": {
        // A refused run shows on the cell that was run, where its outputs would be.
        const cell = data.cell_id ? this.viewOf(data.cell_id) : null;
        if (data.code === "removed") this.removed();
        else if (cell) cell.showNotices([data.message]);
        else this.say(data.message);
        break;
      }
    }
  }

  globalInputView() {
    // An input request of a run that is not a cell's (started over the API).
    const pad = this;
    return {
      askInput: (request) => CellView.prototype.askInput.call({ pad, input: this.globalInput, clearInput: () => this.globalInput.replaceChildren() }, request),
    };
  }

  say(text, action = null) {
    const act = action && h("button", { type: "button", className: "secondary", onclick: () => (item.remove(), action.run()) }, action.label);
    const item = h("p", {}, text, " ", act, " ", h("button", { type: "button", className: "icon", "aria-label": "Dismiss", onclick: () => item.remove() }, "✕"));
    this.messages.append(item);
    setTimeout(() => item.remove(), 15000);
  }

  // Kernels

  currentLanguage() {
    const view = this.focused;
    return view && this.views.has(view.cell) && view.type === "code" ? view.language : this.defaultLanguage;
  }

  /** A (re)join: a kernel there was before and is not now was lost while this page was away
   * (the server restarted, or shut it down): said now, not at the next run. */
  kernelsLost(before, now) {
    for (const [language, state] of before) {
      if (!now.has(language) && state !== "dead") {
        this.say(`The ${this.languageName(language)} kernel was lost while you were disconnected: variables from earlier runs are gone.`);
      }
    }
  }

  updateKernelControls() {
    const language = this.currentLanguage();
    const name = this.languageName(language);
    this.interruptButton.setAttribute("aria-label", `Interrupt the ${name} kernel`);
    this.restartButton.setAttribute("aria-label", `Restart the ${name} kernel`);
    const used = new Set([this.defaultLanguage, ...this.kernels.keys()]);
    for (const view of this.views.values()) if (view.type === "code") used.add(view.language);
    this.kernelList.replaceChildren(
      ...[...used].map((id) => {
        // While the server cannot be reached, nobody knows what the kernels are doing.
        const reachable = this.status.json === "connected" || this.ended;
        const state = reachable ? this.kernels.get(id) || "not started" : "disconnected";
        return h("li", { "data-language": id, "data-state": state }, h("span", { className: `state ${state.replace(" ", "-")}`, "aria-hidden": "true" }), `${this.languageName(id)}: ${state}`);
      }),
    );
  }

  // The host's rules

  get mayEdit() {
    return !this.rules.editing_locked || this.role === "host";
  }

  get mayRun() {
    return this.rules.candidate_execution || this.role === "host";
  }

  applyRules(data) {
    this.rules = { editing_locked: !!data.editing_locked, candidate_execution: data.candidate_execution !== false };
    this.lockBox.checked = this.rules.editing_locked;
    this.runBox.checked = this.rules.candidate_execution;
    this.reviewBox.checked = data.review_after_end !== false;
    this.panel.tests.setShared(data.share_score);
    this.timeLimitBox.value = data.time_limit ?? "";
    this.rateBox.value = data.runs_per_minute ?? "";
    Object.assign(this.rules, { time_limit: data.time_limit ?? null, runs_per_minute: data.runs_per_minute ?? null, review_after_end: data.review_after_end !== false, share_score: !!data.share_score });
    if (this.ended) return;
    for (const view of this.views.values()) view.setReadOnly(!this.mayEdit, !this.mayRun);
    for (const button of this.toolbar.querySelectorAll("[data-runs]")) button.disabled = !this.mayRun;
    for (const button of this.toolbar.querySelectorAll("[data-edits]")) button.disabled = !this.mayEdit;
    const notes = [];
    if (!this.mayEdit) notes.push("The interviewer has locked editing.");
    if (!this.mayRun) notes.push("The interviewer has turned running code off.");
    this.banner.textContent = notes.join(" ");
    this.banner.hidden = notes.length === 0;
  }

  async setRules(change) {
    try {
      const session = await api(`/sessions/${encodeURIComponent(sessionId)}`, { method: "PATCH", body: change, token: this.token });
      this.applyRules(session);
    } catch (error) {
      this.say(error.message);
      this.applyRules(this.rules);
    }
  }

  /** Stop a cell's own run (by its execution id: not whatever else runs in that kernel). */
  stop(view) {
    const executionId = this.running.get(view.id);
    const data = executionId ? { execution_id: executionId } : { language: view.language };
    if (!this.channel.send("interrupt", data)) this.say("Not connected: try again in a moment.");
  }

  kernelAction(type) {
    if (this.ended) return;
    if (!this.channel.send(type, { language: this.currentLanguage() })) this.say("Not connected: try again in a moment.");
  }

  // The end

  async endInterview() {
    const sure = await confirmDialog(
      "End the interview?",
      "Everyone's notebook becomes read-only and the kernels stop. You can still replay the interview and download its notebook.",
      "End interview",
    );
    if (!sure) return;
    this.ending = true;
    try {
      await api(`/sessions/${encodeURIComponent(sessionId)}`, { method: "DELETE", token: this.token });
      this.end("You ended this interview.");
    } catch (error) {
      this.ending = false;
      this.say(error.message);
    }
  }

  end(text) {
    if (this.ended) return;
    this.ended = true;
    this.banner.textContent = `${text} The notebook is read-only now.`;
    this.banner.hidden = false;
    this.provider?.disconnect();
    this.channel?.close();
    for (const view of this.views.values()) view.setReadOnly(true);
    for (const control of this.toolbar.querySelectorAll("button")) control.disabled = true;
    this.endButton.disabled = true;
    this.panel.stop();
    this.setStatus("json", "closed");
  }

  /** The host removed this participant: the page stops; if the host lets them back in, a
   * reload joins again as the same person. */
  removed() {
    this.fail("The host removed you from this interview. If they let you back in, reload the page to join again.");
    this.banner.append(" ", h("button", { type: "button", onclick: () => location.reload() }, "Reload"));
  }

  /** The server refused the name (it is checked there): forget it, offer another. */
  badName(reason) {
    forgetName();
    this.fail(`The server refused your name (${reason || "invalid"}).`);
    this.banner.append(" ", h("button", { type: "button", onclick: () => location.reload() }, "Choose another name"));
  }

  /** The server could not merge this page's last change (it builds on something the server
   * never had): this copy of the notebook can no longer follow the others'. It stops, says so,
   * and offers to load the notebook again; the text stays on the page until then. */
  outOfStep(reason) {
    this.fail(reason || "Your last change could not be merged with the notebook. Reload the page to go on.");
    this.banner.append(" ", h("button", { type: "button", onclick: () => location.reload() }, "Reload"));
  }

  fail(text) {
    this.provider?.disconnect();
    this.channel?.close();
    this.ended = true;
    this.stopped = true; // disconnected for good, though the interview goes on
    this.banner.textContent = text;
    this.banner.hidden = false;
    for (const view of this.views.values()) view.setReadOnly(true);
    for (const control of this.toolbar.querySelectorAll("button")) control.disabled = true;
    this.setStatus("json", "closed");
  }
}

/** This browser's participant of the session: the one it was (with its token), or a new one. */
async function register(name) {
  const path = `/sessions/${encodeURIComponent(sessionId)}/participants`;
  const saved = savedParticipant(sessionId);
  const host = hostToken(sessionId);
  if (saved) {
    try {
      const again = await api(path, { method: "POST", body: { display_name: name, client_id: saved.client_id }, token: host || saved.participant_token });
      return { ...again, participant_token: again.participant_token || saved.participant_token };
    } catch (error) {
      if (error.status !== 403 || error.code === "participant_removed") throw error;
      // That identity is not ours any more (storage from another time): a new one.
    }
  }
  const joined = await api(path, { method: "POST", body: { display_name: name, client_id: saved ? undefined : clientId() }, token: host || undefined });
  saveParticipant(sessionId, joined);
  return joined;
}

async function main() {
  if (root.dataset.found !== "true") return notice("No such interview", `There is no interview ${sessionId}. Check the link you were sent.`);
  takeHostTokenFromUrl(sessionId);
  if (root.dataset.ended === "true") return afterTheEnd();
  const name = savedName() || (await askName());
  let session;
  let available;
  try {
    [session, available] = await Promise.all([api(`/sessions/${encodeURIComponent(sessionId)}`), fetchLanguages()]);
  } catch (error) {
    return notice("The interview cannot be opened", error.message);
  }
  let participant;
  try {
    participant = await register(name);
  } catch (error) {
    return notice("You cannot join this interview", error.message);
  }
  const pad = new Pad({ name, languages: available, session, participant });
  pad.connect();
  window.kernelpad = pad; // for the curious, in the browser's console
}

main();
