// The REST API of kernelpad, for the pages: JSON in, JSON out, errors as ApiError with the
// server's own message (it names the session, the language, the limit).

import { h } from "./dom.js";
import { base, xsrf } from "./site.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The response to a request of the API, or ApiError if there is none, or it is an error. */
async function request(path, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  if (xsrf && method !== "GET") headers["X-XSRFToken"] = xsrf;
  let response;
  try {
    response = await fetch(`${base}api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  if (!response.ok) {
    const detail = (await response.json().catch(() => ({}))).error || {};
    throw new ApiError(response.status, detail.code || "error", detail.message || response.statusText);
  }
  return response;
}

export async function api(path, options = {}) {
  return (await request(path, options)).json().catch(() => ({}));
}

/** Fetch a file the host may download (``token``: the host's) and save it as ``filename``. */
export async function download(path, token, filename) {
  const response = await request(path, { token });
  const disposition = response.headers.get("Content-Disposition") || "";
  const named = /filename="([^"]+)"/.exec(disposition);
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: named ? named[1] : filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/** The languages the server can run, available ones first. */
export async function languages() {
  const { languages } = await api("/languages");
  return languages.filter((language) => language.available);
}
