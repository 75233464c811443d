// Other participants' presence (Yjs awareness), as this page draws it. y-codemirror puts a
// remote user's colour into a style attribute and their name beside their caret: what another
// client sends must not restyle this page. The server already leaves out what does not fit
// (sessions/room/presence.py); the page checks again, for itself, before drawing.

// Hex digits only: nothing that could end the style's value and start another property.
const COLOUR = /^#[0-9a-fA-F]{6}$/;
// A colour of the page's own, for a presence whose colour is not one.
export const FALLBACK_COLOUR = "#757575";
// Characters that are not seen but change what is seen (a right-to-left override), or break
// the line: names may not hold them (sessions/names.py has the same rule).
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu;
const MAX_NAME_LENGTH = 100;

export function safeColour(value) {
  return typeof value === "string" && COLOUR.test(value) ? value : FALLBACK_COLOUR;
}

/** A name as text to show: a string, without invisible characters, not too long. */
export function safeName(value) {
  const name = typeof value === "string" ? value.replace(INVISIBLE, "").trim().slice(0, MAX_NAME_LENGTH) : "";
  return name || "Anonymous";
}

/** A remote user as y-codemirror may draw them: a checked name and colour, and a light colour
 * made from that colour (never one sent as such). */
export function shownUser(user) {
  const color = safeColour(user?.color);
  return { name: safeName(user?.name), color, colorLight: `${color}33` };
}

function isId(value) {
  return value !== null && typeof value === "object" && Number.isInteger(value.client) && Number.isInteger(value.clock);
}

// A Yjs relative position, as y-codemirror makes one for a cell's text: an item's id, or (at
// the text's end) no item and the text's own id. Anything else makes y-codemirror's drawing of
// every remote caret throw, or look up a type by name in this page's document: not drawn.
function isPosition(value) {
  if (value === null || typeof value !== "object") return false;
  return isId(value.item) || (value.item === null && value.tname === null && isId(value.type));
}

function shownState(state) {
  if (state === null || typeof state !== "object") return {};
  const { cursor } = state;
  const drawn = cursor && isPosition(cursor.anchor) && isPosition(cursor.head) ? cursor : null;
  return { ...state, user: shownUser(state.user), cursor: drawn };
}

/** ``awareness`` as y-codemirror should see it: the same object, except that the states it
 * reads to draw remote carets are the checked ones. */
export function checkedAwareness(awareness) {
  return new Proxy(awareness, {
    get(target, property) {
      if (property === "getStates") {
        return () => {
          const states = new Map();
          for (const [clientId, state] of target.getStates()) {
            states.set(clientId, clientId === target.clientID ? state : shownState(state));
          }
          return states;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
