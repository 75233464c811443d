// The session's JSON socket (runs, kernels, input requests, participants), reconnecting by
// itself with a growing delay; every (re)connection joins the session again.

const ENDED = 4410;
const NOT_FOUND = 4404;
const REFUSED = 4403;

export class Channel {
  constructor(url, join, onMessage, onStatus) {
    this.url = url;
    this.join = join;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.delay = 500;
    this.closed = false;
    this.connect();
  }

  connect() {
    this.timer = null;
    if (this.closed) return;
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.delay = 500;
      this.send("join_session", this.join);
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "session_state") this.onStatus("connected");
      this.onMessage(message.type, message.data);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      if (this.closed || [ENDED, NOT_FOUND, REFUSED].includes(event.code)) {
        this.closed = true;
        this.onStatus("closed", event);
        return;
      }
      this.onStatus("reconnecting");
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    });
  }

  send(type, data) {
    if (this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ type, data }));
    return true;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.socket.close();
  }
}
