// The live state of calls and queues, kept in step with the server over SSE
// (GET /api/v1/live/events): a snapshot first, then changes.

import { api } from "./api.js";
import { clock } from "./format.js";

const RECONNECT_MS = 3000;

// A call's key: its Asterisk server and linkedid (calls and call_removed carry both).
export const callKey = (c) => `${c.server || ""}/${c.linkedid}`;

export class LiveClient extends EventTarget {
  constructor(url = "/api/v1/live/events") {
    super();
    this.url = url;
    this.calls = new Map(); // callKey -> LiveCall (a linkedid is unique per server only)
    this.queues = new Map(); // name -> LiveQueue
    this.maxWaitS = 60;
    this.heartbeatS = 15;
    this.ami = true;
    this.amiConnected = true;
    this.status = "connecting";
    this.source = null;
    this.lastMessage = 0;
    this.watchdog = null;
  }

  connect() {
    this.close();
    this.setStatus("connecting");
    const source = new EventSource(this.url, { withCredentials: true });
    this.source = source;
    const on = (name, fn) =>
      source.addEventListener(name, (event) => {
        this.lastMessage = Date.now();
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        if (data.server_time) clock.sync(data.server_time);
        fn(data);
      });
    on("snapshot", (data) => {
      this.calls = new Map(data.calls.map((c) => [callKey(c), c]));
      this.queues = new Map(data.queues.map((q) => [q.name, q]));
      this.maxWaitS = data.max_wait_s;
      this.heartbeatS = data.heartbeat_s || this.heartbeatS;
      this.ami = data.ami;
      this.amiConnected = data.ami_connected;
      this.setStatus("live");
      this.emit({ kind: "snapshot" });
    });
    on("call", (data) => {
      const before = this.calls.get(callKey(data.call)) || null;
      this.calls.set(callKey(data.call), data.call);
      this.emit({ kind: "call", call: data.call, before });
    });
    on("call_removed", (data) => {
      const before = this.calls.get(callKey(data)) || null;
      this.calls.delete(callKey(data));
      this.emit({ kind: "call_removed", linkedid: data.linkedid, before });
    });
    on("queue", (data) => {
      this.queues.set(data.queue.name, data.queue);
      this.emit({ kind: "queue", queue: data.queue });
    });
    on("queue_removed", (data) => {
      this.queues.delete(data.name);
      this.emit({ kind: "queue_removed", name: data.name });
    });
    on("link", (data) => {
      this.amiConnected = data.ami_connected;
      this.emit({ kind: "link" });
    });
    on("heartbeat", () => {});
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (401/403...): a 401 on the session check
        // sends the page back to the login form; otherwise try again shortly.
        this.setStatus("offline");
        api("/api/v1/session")
          .catch(() => null)
          .finally(() => setTimeout(() => this.source === source && this.connect(), RECONNECT_MS));
      } else {
        this.setStatus("reconnecting"); // EventSource retries by itself
      }
    });
    this.lastMessage = Date.now();
    this.watchdog = setInterval(() => {
      // A stream silent for much longer than its heartbeat is dead (sleeping
      // laptop, proxy): start over.
      if (Date.now() - this.lastMessage > this.heartbeatS * 3000) this.connect();
    }, 5000);
  }

  close() {
    if (this.source) this.source.close();
    this.source = null;
    clearInterval(this.watchdog);
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }

  emit(detail) {
    this.dispatchEvent(new CustomEvent("change", { detail }));
  }

  /** Callers still waiting for an attendant (queued, or ringing somewhere). */
  waitingCalls(filter = () => true) {
    return this.sortedCalls((c) => (c.state === "queued" || c.state === "ringing") && filter(c));
  }

  /** Why the live data may be missing or stale, or "" when it is fine. */
  amiProblem() {
    if (!this.ami) return "off";
    if (!this.amiConnected) return "down";
    return "";
  }

  /** Calls sorted by how long they have waited (oldest first). */
  sortedCalls(filter = () => true) {
    return [...this.calls.values()]
      .filter(filter)
      .sort((a, b) =>
        (a.entered_queue_at || a.answered_at || "~").localeCompare(
          b.entered_queue_at || b.answered_at || "~",
        ),
      );
  }
}

const STATUS_TEXT = {
  connecting: "Conectando…",
  live: "Ao vivo",
  reconnecting: "Reconectando…",
  offline: "Sem conexão",
};

/** Keep the top bar's live indicator in step with the client. */
export function bindStatus(client, node) {
  const show = (status) => {
    node.dataset.state = status;
    node.querySelector(".text").textContent = STATUS_TEXT[status] || status;
    node.title = status === "live" ? "Atualizado em tempo real" : "Os dados podem estar desatualizados";
  };
  show(client.status);
  node.hidden = false;
  client.addEventListener("status", (e) => show(e.detail));
}
