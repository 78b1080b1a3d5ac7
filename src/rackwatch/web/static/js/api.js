// Client for the rackwatch REST API (/api/v1) and live stream (/ws), per docs/API.md.
//
// Tokens: read routes answer loopback clients without one (the default), so reads go out bare
// and add the stored token only once the server has asked for one (a 401). Control routes
// (acknowledge, fans, maintenance, faults) always send it. The token lives in localStorage and
// is never written back to the page in full (see maskToken).

const API = "/api/v1";
const TOKEN_KEY = "rackwatch.controlToken";

export class ApiError extends Error {
  constructor(message, status = 0, detail = "") {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

// 401 (no token, or an unknown one) or 403 (a read token on a control route).
export class AuthError extends ApiError {}

// localStorage can be switched off (private modes, policies): then there is simply no token.
export function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function storeToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Nowhere to keep it: calls will answer 401 and the page says what to do.
  }
}

// Enough to recognise which token is saved, never enough to copy it.
export function maskToken(token) {
  return token ? `\u2022\u2022\u2022\u2022${token.slice(-4)}` : "";
}

// Set once a read route has answered 401: from then on reads carry the token too.
let readsNeedToken = false;

function authHeaders(withToken) {
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (withToken && token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

// FastAPI's `detail` is a string for our errors and a list for validation errors.
async function errorFrom(path, response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail)) {
      detail = body.detail.map((d) => d.msg ?? JSON.stringify(d)).join("; ");
    }
  } catch {
    // The body was not JSON: keep the status text.
  }
  const Kind = response.status === 401 || response.status === 403 ? AuthError : ApiError;
  return new Kind(`${path}: ${response.status} ${detail}`, response.status, detail);
}

// GET a REST resource. Array parameters are repeated (`metric=a&metric=b`), as the API expects;
// null/undefined parameters are left out rather than sent as the string "null".
export async function getJSON(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) query.append(key, String(item));
  }
  const qs = query.toString();
  const url = `${API}${path}${qs ? `?${qs}` : ""}`;
  let response = await fetch(url, { headers: authHeaders(readsNeedToken) });
  if (response.status === 401 && !readsNeedToken && storedToken()) {
    readsNeedToken = true; // This server wants tokens for reads: retry once with ours.
    response = await fetch(url, { headers: authHeaders(true) });
  }
  if (!response.ok) throw await errorFrom(path, response);
  return response.json();
}

// A control call (POST, DELETE) with the stored token. Throws AuthError on 401/403, so the page
// can ask for a token; a refused call changes nothing on the server (docs/API.md).
export async function sendJSON(method, path, body) {
  const headers = authHeaders(true);
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`${API}${path}`, init);
  if (!response.ok) throw await errorFrom(path, response);
  return response.status === 204 ? null : response.json();
}

// An entity path as URL path segments (`c01/r01/s01` stays readable, odd characters are escaped).
export function entityPath(entity) {
  return entity.split("/").map(encodeURIComponent).join("/");
}

// The twin may run faster than real time, so "now" for a page is the newest sample time in a
// /live answer (the twin's clock), not the browser's. Falls back to the server's now_ms.
export function newestTs(live) {
  let newest = -Infinity;
  for (const metrics of Object.values(live?.entities ?? {})) {
    for (const reading of Object.values(metrics)) {
      if (Number.isFinite(reading?.ts_ms)) newest = Math.max(newest, reading.ts_ms);
    }
  }
  if (Number.isFinite(newest)) return newest;
  return Number.isFinite(live?.now_ms) ? live.now_ms : Date.now();
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const PING_EVERY_MS = 15_000;
// No message at all for this long (not even a pong) means a half-open socket: drop and redial.
const SILENCE_LIMIT_MS = 35_000;

// A WebSocket subscription that survives drops: it re-dials with capped exponential backoff and
// re-sends its subscription, so pages only deal with `data`, `alerts` and `state` events.
//   state: "connecting" | "live" | "reconnecting"
//   events: "state" {state}, "data" {tsMs, data}, "alerts" {alerts}, "open" {reconnected}
export class LiveSocket extends EventTarget {
  constructor(filters = {}) {
    super();
    this.filters = filters;
    this.state = "connecting";
    this.ws = null;
    this.attempt = 0;
    this.everOpened = false;
    this.awaitingAck = false;
    this.lastMessageAt = 0;
    this.closed = false;
    this.timers = [];
  }

  start() {
    this.dial();
    // One interval does both jobs: keep proxies from idling the socket out, notice a dead one.
    this.timers.push(setInterval(() => this.keepAlive(), PING_EVERY_MS / 3));
    return this;
  }

  close() {
    this.closed = true;
    this.timers.forEach(clearInterval);
    this.ws?.close(1000, "page closed");
  }

  subscribe(filters) {
    this.filters = filters;
    this.send({ type: "subscribe", ...filters });
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state } }));
  }

  dial() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const token = readsNeedToken ? storedToken() : "";
    const query = token ? `?token=${encodeURIComponent(token)}` : "";
    const ws = new WebSocket(`${scheme}://${location.host}/ws${query}`);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.lastMessageAt = Date.now();
      this.awaitingAck = true;
      this.send({ type: "subscribe", ...this.filters });
    });
    ws.addEventListener("message", (event) => this.receive(event.data));
    // "close" follows "error" too, so reconnecting from "close" alone covers both.
    ws.addEventListener("close", () => {
      if (this.ws !== ws || this.closed) return;
      this.ws = null;
      this.setState("reconnecting");
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
      this.attempt += 1;
      // Jitter keeps a room full of dashboards from re-dialling a restarted server in lockstep.
      setTimeout(() => this.dial(), delay * (0.75 + Math.random() * 0.5));
    });
  }

  receive(raw) {
    this.lastMessageAt = Date.now();
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return; // Not ours to fix; the next message will do.
    }
    switch (message.type) {
      case "subscribed": {
        // Only the first ack on a fresh socket is an (re)open; later ones answer subscribe().
        if (!this.awaitingAck) break;
        this.awaitingAck = false;
        const reconnected = this.everOpened;
        this.everOpened = true;
        this.attempt = 0;
        this.setState("live");
        this.dispatchEvent(new CustomEvent("open", { detail: { reconnected } }));
        break;
      }
      case "monitoring_data": {
        const tsMs = message.ts_ms ?? Date.parse(message.timestamp);
        this.dispatchEvent(new CustomEvent("data", { detail: { tsMs, data: message.data ?? {} } }));
        if (message.alerts?.length) {
          this.dispatchEvent(new CustomEvent("alerts", { detail: { alerts: message.alerts } }));
        }
        break;
      }
      case "error":
        // A rejected filter is a bug in this page; say so where a developer will look.
        console.warn(`rackwatch stream: ${message.code}: ${message.message}`);
        break;
      default:
        break; // connection, pong, status: nothing to do beyond lastMessageAt.
    }
  }

  keepAlive() {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS) {
      this.ws.close(4000, "silent");
      return;
    }
    this.send({ type: "ping" });
  }
}

// A page's stream, started and shown by its #conn indicator: `data({tsMs, data})` for each
// message, `alerts(list)` for alert occurrences, `reconnected()` after a drop (read from REST
// what the stream missed).
export function startStream(filters, { data, alerts, reconnected }) {
  const socket = new LiveSocket(filters);
  bindIndicator(document.getElementById("conn"), socket);
  socket.addEventListener("data", ({ detail }) => data(detail));
  if (alerts) socket.addEventListener("alerts", ({ detail }) => alerts(detail.alerts));
  socket.addEventListener("open", ({ detail }) => {
    if (detail.reconnected && reconnected) reconnected();
  });
  return socket.start();
}

const STATE_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };

// Connection indicator: a dot plus a word, so the state is not told by colour alone.
export function bindIndicator(element, socket) {
  const show = (state) => {
    element.dataset.state = state;
    element.querySelector(".conn-text").textContent = STATE_TEXT[state] ?? state;
    element.title = `Live stream: ${STATE_TEXT[state] ?? state}`;
  };
  show(socket.state);
  socket.addEventListener("state", (event) => show(event.detail.state));
}
