// Formatting for people: durations, dates, phone numbers, protocol numbers.

import { el } from "./dom.js";

/** A clock that follows the server's, so wait times agree with the supervisor's. */
export const clock = {
  offsetMs: 0,
  sync(serverTime) {
    const server = Date.parse(serverTime);
    if (!Number.isNaN(server)) this.offsetMs = server - Date.now();
  },
  now() {
    return Date.now() + this.offsetMs;
  },
};

export function secondsSince(iso) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.floor((clock.now() - at) / 1000));
}

export function secondsBetween(fromIso, toIso) {
  const from = Date.parse(fromIso);
  const to = Date.parse(toIso);
  if (Number.isNaN(from) || Number.isNaN(to)) return null;
  return Math.max(0, Math.floor((to - from) / 1000));
}

/** 42 -> "0:42", 3725 -> "1:02:05" */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.floor(seconds % 60);
  const m = Math.floor((seconds / 60) % 60);
  const h = Math.floor(seconds / 3600);
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

const dateTime = new Intl.DateTimeFormat("pt-BR", { dateStyle: "short", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat("pt-BR", { timeStyle: "medium" });

export function formatDateTime(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "—" : dateTime.format(at);
}

export function formatTime(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "—" : timeOnly.format(at);
}

/** +5511987654321 -> "(11) 98765-4321"; anything else as it came. */
export function formatPhone(raw) {
  if (!raw) return "Número não identificado";
  const m = /^\+55(\d{2})(\d{4,5})(\d{4})$/.exec(raw);
  if (m) return `(${m[1]}) ${m[2]}-${m[3]}`;
  const masked = /^\*+(\d{4})$/.exec(raw);
  if (masked) return `•••• ${masked[1]}`;
  return raw;
}

/** Digits in groups of three, as the caller heard them. */
export function groupDigits(number, size = 3) {
  if (!number) return "";
  const groups = [];
  for (let i = 0; i < number.length; i += size) groups.push(number.slice(i, i + size));
  return groups.join(" ");
}

export const CALL_STATES = {
  ivr: "No menu",
  queued: "Na fila",
  ringing: "Tocando",
  connected: "Em atendimento",
};

export const AMI_PROBLEMS = {
  off: "Sem dados ao vivo: o acompanhamento de chamadas (AMI) está desligado neste servidor.",
  down: "Conexão com o Asterisk perdida: os dados ao vivo podem estar desatualizados.",
};

/** Show or hide the banner that says the live data is missing or stale. */
export function showAmiProblem(node, problem) {
  node.hidden = !problem;
  node.textContent = problem ? AMI_PROBLEMS[problem] : "";
}

export const MEMBER_STATUSES = {
  available: "Livre",
  busy: "Ocupado",
  paused: "Em pausa",
  unavailable: "Indisponível",
};

function tickOne(node) {
  const seconds = secondsSince(node.dataset.since);
  node.textContent = duration(seconds);
  if (node.dataset.limit) {
    const limit = Number(node.dataset.limit);
    const over = seconds !== null && seconds > limit;
    node.classList.toggle("over", over);
    node.closest("[data-wait-row]")?.classList.toggle("over", over);
  }
}

/**
 * A clock showing the time elapsed since `since` (ISO), kept current by
 * startTicker; past `limit` seconds it (and its [data-wait-row]) gets "over".
 */
export function timer(since, { limit = null, cls = "" } = {}) {
  const node = el("span", { class: `timer ${cls}`.trim(), dataset: { since: since || "" } });
  if (limit !== null) node.dataset.limit = limit;
  tickOne(node);
  return node;
}

/** Tick every [data-since] element once a second (and call onTick). */
export function startTicker(root = document, onTick = null) {
  const tick = () => {
    for (const node of root.querySelectorAll("[data-since]")) tickOne(node);
    if (onTick) onTick();
  };
  tick();
  return setInterval(tick, 1000);
}

/** After a re-render: mark the rows of waits already over their limit. */
export function refreshTimers(root = document) {
  for (const node of root.querySelectorAll("[data-since][data-limit]")) tickOne(node);
}
