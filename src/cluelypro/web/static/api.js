// Talking to `cluelypro serve`: JSON over HTTP (with this page's client id on every change) and
// the two WebSockets. The token, when the server needs one, is in an HttpOnly cookie set by the
// first request that carried ?token= — fetch and WebSocket send it along by themselves.

function randomId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export const CLIENT_ID = randomId();
const CLIENT_HEADER = "X-CluelyPro-Client";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function detailOf(body, fallback) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg || String(d)).join("; ");
  return fallback;
}

export async function request(method, path, body, contentType) {
  const headers = { Accept: "application/json", [CLIENT_HEADER]: CLIENT_ID }; // status.read_only is per client
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    payload = body;
    headers["Content-Type"] = contentType || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, detailOf(data, `${response.status} ${response.statusText}`));
  return data;
}

export const api = {
  status: () => request("GET", "api/status"),
  events: () => request("GET", "api/events"),
  settings: () => request("GET", "api/settings"),
  patchSettings: (changes) => request("PATCH", "api/settings", changes),
  control: (action) => request("POST", `api/control/${encodeURIComponent(action)}`),
  profiles: () => request("GET", "api/profiles"),
  enrolText: () => request("GET", "api/enrol/text"),
  enrol: (name, wav) => request("POST", `api/profiles/${encodeURIComponent(name)}/enrol`, wav, "audio/wav"),
  useProfile: (name) => request("POST", `api/profiles/${encodeURIComponent(name)}/use`),
  deleteProfile: (name) => request("DELETE", `api/profiles/${encodeURIComponent(name)}`),
};

export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const base = location.pathname.replace(/[^/]*$/, "");
  return `${scheme}//${location.host}${base}${path}`;
}

/** /ws/events with reconnection (back-off 0.5 s → 10 s). Each connection starts with the
 * replay of the kept lines, so `onOpen` resets the view and the lines rebuild it. */
export class EventStream {
  constructor({ onOpen, onLine, onState }) {
    this.onOpen = onOpen;
    this.onLine = onLine;
    this.onState = onState;
    this.delay = 500;
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const socket = new WebSocket(socketUrl("ws/events"));
    this.socket = socket;
    socket.onopen = () => {
      this.delay = 500;
      this.onOpen();
      this.onState(true);
    };
    socket.onmessage = (message) => {
      if (typeof message.data !== "string") return;
      let line;
      try {
        line = JSON.parse(message.data);
      } catch {
        return;
      }
      this.onLine(line);
    };
    socket.onclose = () => {
      this.onState(false);
      if (this.closed) return;
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(10_000, this.delay * 2);
    };
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
  }
}
