// Where this server's pages, API and sockets are, and who is logged in through JupyterHub: the
// page says (a proxy, such as JupyterHub's, may serve everything under a path prefix).

const page = document.documentElement.dataset;

/** The path prefix every URL of the server is under, with its trailing "/". */
export const base = page.baseUrl || "/";
/** The JupyterHub user, when the server is a Hub service (empty otherwise). */
export const hubUser = page.hubUser || "";
/** The Hub's XSRF token, sent with every change a Hub user's cookie authorises. */
export const xsrf = page.xsrf || "";
export const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${base}`;
