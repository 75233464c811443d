// Who this browser is: a client id kept across visits (so a reconnect or a reload is the same
// participant), the name it gave, and the host tokens of interviews it started.

const store = window.localStorage;

function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** This browser's participant of a session: its client id and participant token. */
export function savedParticipant(sessionId) {
  try {
    return JSON.parse(store.getItem(`kernelpad:participant:${sessionId}`) || "null");
  } catch {
    return null;
  }
}

export function saveParticipant(sessionId, participant) {
  store.setItem(`kernelpad:participant:${sessionId}`, JSON.stringify(participant));
}

export function clientId() {
  let id = store.getItem("kernelpad:client-id");
  if (!id) {
    id = randomId("c-");
    store.setItem("kernelpad:client-id", id);
  }
  return id;
}

export function savedName() {
  return store.getItem("kernelpad:name") || "";
}

export function saveName(name) {
  store.setItem("kernelpad:name", name);
}

export function forgetName() {
  store.removeItem("kernelpad:name");
}

export function hostToken(sessionId) {
  return store.getItem(`kernelpad:host:${sessionId}`);
}

export function saveHostToken(sessionId, token) {
  store.setItem(`kernelpad:host:${sessionId}`, token);
}

/** A host link carries its token in the fragment (never sent to a server): keep it, and take
 * it out of the address bar so it is not shared by accident. */
export function takeHostTokenFromUrl(sessionId) {
  const match = /(?:^|&)host=([^&]+)/.exec(window.location.hash.slice(1));
  if (match) {
    saveHostToken(sessionId, decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
}

export const COLOURS = ["#d32f2f", "#7b1fa2", "#1976d2", "#00796b", "#f57c00", "#5d4037", "#c2185b", "#388e3c"];

/** A colour per participant, the same in every browser. */
export function colourOf(id) {
  let hash = 0;
  for (const char of id) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return COLOURS[hash % COLOURS.length];
}
