// The Yjs socket without a token in its URL. y-websocket opens (and reopens) its socket with
// `new WebSocketPolyfill(url)`, everything in the URL; a URL is shown in the console and written
// to proxies' access logs. So each connection first asks the API for a single-use ticket (the
// token goes in that request's Authorization header) and opens with `ticket=` instead.

const UNREACHABLE = 1006; // y-websocket tries again, later and later

/** The close code the socket itself would have refused with, for a ticket refused with
 * ``status`` (0: the server could not be reached), so the pad answers both alike. */
function closeCodeOf(status) {
  if (status === 404) return 4404; // no such interview
  if (status === 409) return 4410; // it has ended
  // Not let in (a wrong token, removed by the host): final, as y-websocket takes 44xx.
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) return 4403;
  return UNREACHABLE;
}

/** A WebSocket class for y-websocket: each socket opens once `getTicket()` has given it a
 * ticket; if there is none, it closes as the socket would have refused it. */
export function ticketedWebSocket(getTicket) {
  return class TicketedSocket {
    constructor(url, protocols) {
      this.socket = null;
      this.closed = false;
      this.binaryType = "blob";
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      getTicket().then(
        (ticket) => this.open(url, protocols, ticket),
        (error) => this.refused(error),
      );
    }

    open(url, protocols, ticket) {
      if (this.closed) return;
      const separator = url.includes("?") ? "&" : "?";
      const socket = new WebSocket(`${url}${separator}ticket=${encodeURIComponent(ticket)}`, protocols);
      socket.binaryType = this.binaryType;
      socket.onopen = (event) => this.onopen?.(event);
      socket.onmessage = (event) => this.onmessage?.(event);
      socket.onerror = (event) => this.onerror?.(event);
      socket.onclose = (event) => this.onclose?.(event);
      this.socket = socket;
    }

    refused(error) {
      if (this.closed) return;
      this.closed = true;
      const code = closeCodeOf(error.status);
      // y-websocket knows the close event only by its code and reason.
      this.onclose?.({ code, reason: error.message || "", wasClean: false });
    }

    get readyState() {
      if (this.socket) return this.socket.readyState;
      return this.closed ? WebSocket.CLOSED : WebSocket.CONNECTING;
    }

    get OPEN() {
      return WebSocket.OPEN;
    }

    send(data) {
      this.socket?.send(data);
    }

    close(code, reason) {
      this.closed = true;
      this.socket?.close(code, reason);
    }
  };
}
