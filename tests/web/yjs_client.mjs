// A Yjs client of a kernelpad session, as a browser runs one: y-websocket's WebsocketProvider.
// Usage (from kernelpad/web/frontend, where the npm packages are):
//   node --input-type=module < yjs_client.mjs  with KP_URL, KP_ROOM, KP_TAG, KP_EDITS set,
//   and KP_PARAMS (JSON: who joins, as the provider's params) if wanted.
// It waits for the sync, appends KP_EDITS tagged edits to the first cell's source, waits for
// the document to go quiet, and prints the source it ends with as JSON.
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import WebSocket from "ws";

const { KP_URL, KP_ROOM, KP_TAG, KP_EDITS, KP_QUIET, KP_PARAMS } = process.env;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const doc = new Y.Doc();
const provider = new WebsocketProvider(KP_URL, KP_ROOM, doc, {
  WebSocketPolyfill: WebSocket,
  params: KP_PARAMS ? JSON.parse(KP_PARAMS) : {},
});
provider.awareness.setLocalStateField("user", { name: `node-${KP_TAG}`, color: "#ff8800" });

provider.on("sync", async (synced) => {
  if (!synced) return;
  const source = doc.getArray("cells").get(0).get("source");
  for (let i = 0; i < Number(KP_EDITS); i++) {
    source.insert(i % 2 ? 0 : source.length, `<${KP_TAG}:${i}>`);
    await sleep(2);
  }
  let last = -1;
  let stable = 0;
  while (stable < Number(KP_QUIET || 10)) {
    await sleep(100);
    const now = source.toString().length;
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
  console.log(JSON.stringify({ source: source.toString(), cells: doc.getArray("cells").length }));
  provider.destroy();
  process.exit(0);
});
setTimeout(() => {
  console.error("no sync within 30 s");
  process.exit(2);
}, 30000);
