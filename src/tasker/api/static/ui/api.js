// The console's only way to the server: the REST API, with the operator's credentials on every call.
// Credentials live in sessionStorage (gone when the tab closes) and are never written into the page.

const CREDENTIALS = "tasker.console.credentials";
const OPERATOR = "tasker.console.operator";
let apiKeyHeader = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function credentials() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(CREDENTIALS) || "null");
    return stored && typeof stored.value === "string" && stored.value ? stored : null;
  } catch {
    return null;
  }
}

export function setCredentials(kind, value) {
  sessionStorage.setItem(CREDENTIALS, JSON.stringify({ kind: kind === "bearer" ? "bearer" : "api_key", value }));
}

export function clearCredentials() {
  sessionStorage.removeItem(CREDENTIALS);
}

export function operator() {
  return sessionStorage.getItem(OPERATOR) || "";
}

export function setOperator(name) {
  if (name) sessionStorage.setItem(OPERATOR, name);
}

/** A URL under the server root, relative to /ui/ so the console also works behind a path prefix. */
export function url(path) {
  return new URL(`../${path.replace(/^\//, "")}`, window.location.href).toString();
}

async function keyHeader() {
  // The header name is a server setting (api_key_header); the public OpenAPI document declares it.
  if (apiKeyHeader === null) {
    try {
      const response = await fetch(url("api-docs/openapi.json"));
      const doc = await response.json();
      apiKeyHeader = doc.components.securitySchemes.ApiKeyAuth.name || "X-API-Key";
    } catch {
      apiKeyHeader = "X-API-Key";
    }
  }
  return apiKeyHeader;
}

/** Call the API; resolves to the JSON body, rejects with an ApiError carrying the server's own message. */
export async function call(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const held = credentials();
  if (held && held.kind === "bearer") headers.Authorization = `Bearer ${held.value}`;
  else if (held) headers[await keyHeader()] = held.value;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, "NETWORK", `the server could not be reached (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = data && data.error ? data.error : {};
    throw new ApiError(response.status, detail.code || `HTTP_${response.status}`, detail.message || `${response.status} ${response.statusText}`);
  }
  return data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") q.set(key, String(value));
  }
  return q.toString();
}
