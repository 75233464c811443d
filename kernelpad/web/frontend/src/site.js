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

// The theme: the reader's choice if they made one (kept in this browser), else the system's.
const THEME_KEY = "kernelpad:theme";
const systemDark = window.matchMedia?.("(prefers-color-scheme: dark)");

/** Whether pages are dark now. */
export function darkTheme() {
  return document.documentElement.dataset.theme === "dark";
}

function applyTheme() {
  const chosen = localStorage.getItem(THEME_KEY);
  const dark = chosen ? chosen === "dark" : !!systemDark?.matches;
  if (darkTheme() === dark && document.documentElement.dataset.theme) return;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  document.dispatchEvent(new CustomEvent("kernelpad:theme", { detail: { dark } }));
}

/** Switch between light and dark, and remember the choice. */
export function toggleTheme() {
  localStorage.setItem(THEME_KEY, darkTheme() ? "light" : "dark");
  applyTheme();
}

applyTheme();
systemDark?.addEventListener?.("change", applyTheme);
