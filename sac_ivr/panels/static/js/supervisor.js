// The supervisor view: queues, waiting calls against the legal limit, agents.

import { $, el, replaceChildren } from "./dom.js";
import {
  CALL_STATES,
  MEMBER_STATUSES,
  secondsBetween,
  showAmiProblem,
  duration,
  formatPhone,
  groupDigits,
  refreshTimers,
  secondsSince,
  startTicker,
  timer,
} from "./format.js";
import { LiveClient, bindStatus } from "./live.js";
import { startSession } from "./session.js";

const live = new LiveClient("/api/v1/live/events?view=supervisor");

startSession({ role: "supervisor", onReady });

function onReady() {
  bindStatus(live, $("#live-status"));
  live.addEventListener("change", render);
  live.connect();
  startTicker(document, tickKpis);
}

const protocolLink = (number) =>
  number
    ? el("a", { href: `/agent/calls/${encodeURIComponent(number)}`, target: "_blank", rel: "noopener" }, groupDigits(number))
    : el("span", { class: "muted" }, "—");

function render() {
  showAmiProblem($("#ami-banner"), live.amiProblem());
  const limit = live.maxWaitS;
  $("#limit").textContent = `${limit} s`;
  $("#limit-help").title =
    "Portaria MJ 2.014/2008: no máximo 60 s até o atendente (45 s em serviços financeiros; " +
    "até 90 s às segundas-feiras, vésperas e dias seguintes a feriados e no 5º dia útil). " +
    "Ajuste na configuração panels_max_wait_s.";

  const calls = live.sortedCalls();
  // Until an attendant answers, the caller waits (Portaria 2.014: time to reach one).
  const waiting = live.waitingCalls();
  const connected = calls.filter((c) => c.state === "connected");
  $("#waiting-total").textContent = waiting.length;
  $("#waiting-count").textContent = waiting.length;
  $("#connected-total").textContent = connected.length;
  $("#ringing-total").textContent = calls.filter((c) => c.state === "ringing").length;
  $("#ivr-total").textContent = calls.filter((c) => c.state === "ivr").length;
  $("#active-count").textContent = connected.length;
  const nameOf = agentNames();

  replaceChildren(
    $("#waiting"),
    waiting.map((c) =>
      el(
        "tr",
        { dataset: { waitRow: "" } },
        el("td", {}, timer(c.entered_queue_at, { limit, cls: "wait strong" })),
        el("td", {}, formatPhone(c.caller)),
        el("td", {}, c.queue || "—"),
        el("td", {}, protocolLink(c.protocol)),
        el("td", { class: "muted" }, c.server || "—"),
        el(
          "td",
          {},
          c.state === "ringing"
            ? el(
                "span",
                { class: "badge small state-ringing", title: (c.ringing || []).join(", ") },
                `tocando: ${ringingNames(c, nameOf)}`,
              )
            : null,
        ),
      ),
    ),
  );
  $("#waiting-empty").hidden = waiting.length > 0;

  replaceChildren(
    $("#active"),
    connected.map((c) => {
      const waited = secondsBetween(c.entered_queue_at, c.answered_at);
      return el(
        "tr",
        { class: waited !== null && waited > limit ? "late" : "" },
        el("td", { class: "strong" }, c.agent_name || nameOf.get(c.agent) || c.agent || "—"),
        el("td", {}, timer(c.answered_at)),
        el(
          "td",
          { class: waited !== null && waited > limit ? "late-wait" : "muted" },
          waited === null ? "—" : duration(waited),
        ),
        el("td", {}, formatPhone(c.caller)),
        el("td", {}, protocolLink(c.protocol)),
        el("td", { class: "muted" }, c.server || "—"),
      );
    }),
  );
  $("#active-empty").hidden = connected.length > 0;

  const queues = [...live.queues.values()];
  replaceChildren($("#queues"), queues.map((q) => queueRow(q, limit)));
  $("#queues-empty").hidden = queues.length > 0;

  renderAgents(queues, calls);
  refreshTimers();
  tickKpis();
}

function queueRow(q, limit) {
  return el(
    "tr",
    { dataset: { waitRow: "" }, class: "queue-row" },
    el("td", { class: "strong" }, q.name),
    el("td", { class: "num strong" }, q.waiting),
    el(
      "td",
      { class: "wait-cell" },
      q.oldest_entered_at
        ? [
            timer(q.oldest_entered_at, { limit, cls: "wait" }),
            el("span", { class: "wait-bar" }, el("span", { class: "wait-fill", dataset: { barSince: q.oldest_entered_at, bar: limit } })),
          ]
        : el("span", { class: "muted" }, "—"),
    ),
    el("td", { class: "num" }, q.agents.available),
    el("td", { class: "num" }, q.agents.busy),
    el("td", { class: "num" }, q.agents.paused),
    el("td", { class: "num" }, q.agents.unavailable),
  );
}

/** interface -> member name, from every queue. */
function agentNames() {
  const names = new Map();
  for (const q of live.queues.values()) {
    for (const m of q.members || []) if (m.interface && m.name) names.set(m.interface, m.name);
  }
  return names;
}

function ringingNames(call, names) {
  const rung = call.ringing && call.ringing.length ? call.ringing : [call.agent].filter(Boolean);
  if (!rung.length) return "—";
  const shown = rung.slice(0, 2).map((i) => names.get(i) || i);
  return rung.length > 2 ? `${shown.join(", ")} +${rung.length - 2}` : shown.join(", ");
}

/** Agents appear once, even when they serve several queues. */
function renderAgents(queues, calls) {
  const agents = new Map();
  const rank = { busy: 3, available: 2, paused: 1, unavailable: 0 };
  for (const q of queues) {
    for (const m of q.members || []) {
      const key = m.interface || m.name;
      const known = agents.get(key);
      if (!known) agents.set(key, { ...m, queues: [q.name] });
      else {
        known.queues.push(q.name);
        if (rank[m.status] > rank[known.status]) known.status = m.status;
      }
    }
  }
  const counts = { available: 0, busy: 0, paused: 0, unavailable: 0 };
  for (const a of agents.values()) counts[a.status] += 1;
  for (const [status, n] of Object.entries(counts)) $(`#agents-${status}`).textContent = n;
  const sorted = [...agents.values()].sort(
    (a, b) => rank[b.status] - rank[a.status] || (a.name || a.interface).localeCompare(b.name || b.interface),
  );
  replaceChildren(
    $("#agents"),
    sorted.map((a) => {
      const call = calls.find((c) => c.state === "connected" && c.agent === a.interface);
      return el(
        "li",
        { class: `agent-card member-${a.status}` },
        el("div", { class: "agent-name" }, a.name || a.interface),
        el("div", { class: "muted small" }, a.interface, " · ", a.queues.join(", ")),
        el(
          "div",
          { class: "agent-status" },
          el("span", { class: `chip member-${a.status}` }, MEMBER_STATUSES[a.status]),
          a.status === "paused" && a.paused_reason ? el("span", { class: "muted small" }, a.paused_reason) : null,
          a.calls_taken !== null && a.calls_taken !== undefined
            ? el("span", { class: "muted small", title: "Chamadas atendidas desde o início da fila" }, `${a.calls_taken} atendidas`)
            : null,
        ),
        call
          ? el(
              "div",
              { class: "agent-call small" },
              `${CALL_STATES[call.state]} há `,
              timer(call.answered_at),
              " · ",
              protocolLink(call.protocol),
            )
          : null,
      );
    }),
  );
  $("#agents-empty").hidden = agents.size > 0;
}

/** The longest wait right now, against the limit; the bars in the queue table. */
function tickKpis() {
  const limit = live.maxWaitS;
  const waits = live.waitingCalls((c) => c.entered_queue_at).map((c) => secondsSince(c.entered_queue_at));
  for (const q of live.queues.values()) {
    if (q.oldest_entered_at) waits.push(secondsSince(q.oldest_entered_at));
  }
  const longest = waits.length ? Math.max(...waits) : null;
  const over = live.waitingCalls((c) => secondsSince(c.entered_queue_at) > limit).length;
  $("#longest-wait").textContent = longest === null ? "—" : duration(longest);
  $("#kpi-longest").classList.toggle("over", longest !== null && longest > limit);
  $("#kpi-longest").classList.toggle("near", longest !== null && longest > limit * 0.75 && longest <= limit);
  $("#kpi-waiting").classList.toggle("over", over > 0);
  $("#waiting-over").textContent = over
    ? `${over} acima do limite de ${limit} s`
    : "nenhuma acima do limite";
  for (const bar of document.querySelectorAll("[data-bar]")) {
    const seconds = secondsSince(bar.dataset.barSince) || 0;
    bar.style.width = `${Math.min(100, (seconds / Number(bar.dataset.bar)) * 100)}%`;
    bar.classList.toggle("over", seconds > Number(bar.dataset.bar));
    bar.classList.toggle("near", seconds > Number(bar.dataset.bar) * 0.75);
  }
}
