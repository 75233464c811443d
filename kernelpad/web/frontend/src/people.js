// Who is in the interview, in the top bar: a dot of their colour, their name, and for the host
// a button to remove each candidate and, for those removed, one to let them back in.
import { api } from "./api.js";
import { confirmDialog, h } from "./dom.js";
import { colourOf } from "./identity.js";

/** A colour the server gave, if it is one (it goes into a style attribute). */
export function safeColour(value) {
  return typeof value === "string" && /^#[0-9a-fA-F]{6}$/.test(value) ? value : "";
}

export class People {
  constructor({ sessionPath, clientId, token, say }) {
    this.sessionPath = sessionPath;
    this.clientId = clientId;
    this.token = token;
    this.say = say;
    this.role = "candidate";
    this.present = new Map(); // client_id -> participant, as the socket tells
    this.removed = new Map(); // client_id -> participant the host removed (the host's page)
    this.element = h("ul", { className: "people", "aria-label": "Participants" });
  }

  /** Those removed, as the session lists them: the host may let them back in. */
  knowRemoved(participants) {
    for (const person of participants) if (person.removed) this.removed.set(person.client_id, person);
    this.render();
  }

  set(participants, role) {
    this.role = role;
    this.present = new Map(participants.map((p) => [p.client_id, p]));
    this.render();
  }

  joined(person) {
    this.present.set(person.client_id, { ...person, connected: true });
    this.removed.delete(person.client_id);
    this.render();
  }

  left(clientId) {
    this.present.delete(clientId);
    this.render();
  }

  render() {
    const host = this.role === "host";
    const items = [...this.present.values()].map((person) =>
      h(
        "li",
        { "data-client-id": person.client_id, className: person.connected === false ? "away" : "present" },
        h("span", { className: "dot", style: `background:${safeColour(person.colour) || colourOf(person.client_id)}`, "aria-hidden": "true" }),
        person.display_name,
        person.role === "host" ? h("span", { className: "role" }, " (host)") : null,
        person.client_id === this.clientId ? h("span", { className: "role" }, " (you)") : null,
        host && person.role !== "host"
          ? h("button", { type: "button", className: "icon danger", "aria-label": `Remove ${person.display_name} from the interview`, title: "Remove", onclick: () => this.remove(person) }, "✕")
          : null,
      ),
    );
    const removed = host
      ? [...this.removed.values()].map((person) =>
          h(
            "li",
            { "data-client-id": person.client_id, className: "removed" },
            h("span", { className: "dot", "aria-hidden": "true" }),
            h("s", {}, person.display_name),
            h("span", { className: "role" }, " (removed)"),
            h("button", { type: "button", className: "secondary small", "aria-label": `Let ${person.display_name} back in`, onclick: () => this.readmit(person) }, "Let back in"),
          ),
        )
      : [];
    this.element.replaceChildren(...items, ...removed);
  }

  async remove(person) {
    const sure = await confirmDialog(
      `Remove ${person.display_name}?`,
      `${person.display_name} leaves the interview now and cannot join again, unless you let them back in.`,
      "Remove",
    );
    if (!sure) return;
    try {
      const removed = await api(`${this.sessionPath}/participants/${encodeURIComponent(person.client_id)}`, { method: "DELETE", token: this.token });
      this.present.delete(person.client_id);
      this.removed.set(person.client_id, removed);
      this.render();
    } catch (error) {
      this.say(error.message);
    }
  }

  async readmit(person) {
    try {
      await api(`${this.sessionPath}/participants/${encodeURIComponent(person.client_id)}/readmission`, { method: "POST", token: this.token });
      this.say(`${person.display_name} may join again: they reload their page to come back.`);
    } catch (error) {
      if (error.code !== "participant_not_found") return this.say(error.message);
      // Let back in already (from another of the host's pages).
    }
    this.removed.delete(person.client_id);
    this.render();
  }
}
