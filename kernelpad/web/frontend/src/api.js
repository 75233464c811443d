// The REST API of kernelpad, for the pages: JSON in, JSON out, errors as ApiError with the
// server's own message (it names the session, the language, the limit).

import { base, xsrf } from "./site.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, { method = "GET", body, token } = {}) {
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
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = data.error || {};
    throw new ApiError(response.status, detail.code || "error", detail.message || response.statusText);
  }
  return data;
}

/** The languages the server can run, available ones first. */
export async function languages() {
  const { languages } = await api("/languages");
  return languages.filter((language) => language.available);
}
