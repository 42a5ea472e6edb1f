// The agent panel: the calls on my extension and the queue (live), the open
// protocol with the caller's other protocols, and the actions on it.

import { api, ApiError } from "./api.js";
import { checkDocument, formatDocument } from "./documents.js";
import { $, el, replaceChildren, toast } from "./dom.js";
import {
  CALL_STATES,
  MEMBER_STATUSES,
  showAmiProblem,
  duration,
  formatDateTime,
  formatPhone,
  formatTime,
  groupDigits,
  refreshTimers,
  secondsBetween,
  startTicker,
  timer,
} from "./format.js";
import { LiveClient, bindStatus } from "./live.js";
import { startSession } from "./session.js";

const FALLBACK_FINAL = new Set(["closed", "cancelled"]); // until /api/v1/lifecycle answers
const FALLBACK_STATUS_LABELS = { open: "Aberto" };
const EVENT_KINDS = {
  opened: "Protocolo aberto",
  menu_choice: "Escolha no menu",
  answered: "Ligação atendida",
  status: "Mudança de situação",
  field: "Dados alterados",
  cancellation_registered: "Cancelamento registrado",
  sms_requested: "SMS pedido pelo cliente",
  notification_sent: "Aviso enviado ao cliente",
  notification_failed: "Falha ao avisar o cliente",
  history_requested: "Histórico pedido pelo cliente",
  history: "Histórico enviado",
  anonymised: "Dados pessoais anonimizados",
};
const FIELD_CHANGED = {
  subject: "Assunto alterado",
  customer_document: "CPF/CNPJ alterado",
  customer_name: "Nome do cliente alterado",
  customer_email: "E-mail alterado",
  customer_phone: "Telefone alterado",
  notes: "Anotações alteradas",
  department: "Setor alterado",
  agent: "Atendente alterado",
};
// Actors that are not a person's login.
const ACTORS = { caller: "cliente", system: "sistema" };
const MENU_CHOICES = {
  "complaint-billing": "reclamação (cobrança)",
  "complaint-product": "reclamação (produto ou serviço)",
  cancellation: "cancelamento",
  information: "informação",
  attendant: "falar com atendente",
};
const PROTOCOL_PATH = /^\/agent\/calls\/([^/]+)\/?$/;

const live = new LiveClient();
const state = {
  viewer: null,
  lifecycle: null, // GET /api/v1/lifecycle, null until it answers
  protocol: null, // agent view of the open protocol
  dirty: false,
  liveKey: "",
  loading: 0,
};

startSession({ role: "agent", onReady });

function onReady(viewer) {
  state.viewer = viewer;
  $("#no-extension").hidden = Boolean(viewer.extension);
  bindStatus(live, $("#live-status"));
  live.addEventListener("change", onLiveChange);
  live.connect();
  startTicker(document, renderCallLive);
  bindForms();
  loadLifecycle();
  const match = PROTOCOL_PATH.exec(window.location.pathname);
  if (match) openProtocol(decodeURIComponent(match[1]), { push: false });
  window.addEventListener("popstate", () => {
    const m = PROTOCOL_PATH.exec(window.location.pathname);
    if (m) openProtocol(decodeURIComponent(m[1]), { push: false });
  });
  window.addEventListener("beforeunload", (event) => {
    if (state.dirty) event.preventDefault();
  });
}

// ------------------------------------------------------------------ live

function onLiveChange(event) {
  const change = event.detail;
  renderSidebar();
  const call = change.call;
  const arrived =
    change.kind === "call" && call.mine && call.protocol && !(change.before && change.before.mine);
  if (arrived) screenPop(call);
  if (change.kind === "snapshot" && !state.protocol) {
    const mine = live.sortedCalls((c) => c.mine && c.protocol);
    if (mine.length) openProtocol(mine[mine.length - 1].protocol);
  }
  renderCallLive();
}

/** A call starts ringing on my extension: open it, unless I am busy with another. */
function screenPop(call) {
  const open = state.protocol && state.protocol.number;
  if (open === call.protocol) return;
  const busyWithAnother =
    open && (state.dirty || live.sortedCalls((c) => c.mine && c.protocol === open).length > 0);
  if (!busyWithAnother) {
    openProtocol(call.protocol);
    return;
  }
  const note = toast(
    el(
      "span",
      {},
      `Nova chamada: protocolo ${groupDigits(call.protocol)} `,
      el("button", { type: "button", class: "btn small", onclick: () => openProtocol(call.protocol) }, "Abrir"),
    ),
    "info",
    10000,
  );
  note.classList.add("pop");
}

function renderSidebar() {
  showAmiProblem($("#ami-banner"), live.amiProblem());
  const mine = live.sortedCalls((c) => c.mine);
  const queued = live.waitingCalls((c) => !c.mine);
  $("#my-count").textContent = mine.length;
  $("#queue-count").textContent = queued.length;
  $("#my-empty").hidden = mine.length > 0;
  $("#queue-empty").hidden = queued.length > 0;
  replaceChildren($("#my-calls"), mine.map(myCallItem));
  replaceChildren($("#queue-calls"), queued.map(queuedCallItem));
  replaceChildren($("#queue-summary"), [...live.queues.values()].map(queueSummary));
  refreshTimers($(".sidebar"));
}

function myCallItem(call) {
  const open = state.protocol && state.protocol.number === call.protocol;
  const connected = call.state === "connected";
  const waited = connected ? secondsBetween(call.entered_queue_at, call.answered_at) : null;
  return el(
    "li",
    {
      class: `call-item state-${call.state}${open ? " active" : ""}`,
      tabindex: "0",
      title: call.protocol ? "Abrir este protocolo" : "",
      onclick: () => call.protocol && openProtocol(call.protocol),
      onkeydown: (e) => e.key === "Enter" && call.protocol && openProtocol(call.protocol),
    },
    el(
      "div",
      { class: "row" },
      el("span", { class: "protocol" }, call.protocol ? groupDigits(call.protocol) : "sem protocolo"),
      timer(connected ? call.answered_at : call.entered_queue_at, { cls: "big" }),
    ),
    el(
      "div",
      { class: "row sub" },
      el("span", { class: "caller" }, formatPhone(call.caller)),
      el("span", { class: `badge small state-${call.state}` }, CALL_STATES[call.state] || call.state),
    ),
    el(
      "div",
      { class: "row sub muted" },
      el("span", {}, call.queue ? `Fila ${call.queue}` : ""),
      waited !== null ? el("span", {}, `esperou ${duration(waited)}`) : null,
    ),
  );
}

function queuedCallItem(call) {
  return el(
    "li",
    { class: "call-item state-queued", dataset: { waitRow: "" } },
    el(
      "div",
      { class: "row" },
      el("span", { class: "caller" }, formatPhone(call.caller)),
      timer(call.entered_queue_at, { limit: live.maxWaitS, cls: "wait big" }),
    ),
    el(
      "div",
      { class: "row sub muted" },
      el("span", {}, call.queue ? `Fila ${call.queue}` : "Fila"),
      call.state === "ringing"
        ? el("span", { class: "badge small state-ringing-other" }, "tocando para um colega")
        : el("span", {}, call.protocol ? groupDigits(call.protocol) : ""),
    ),
  );
}

function queueSummary(queue) {
  const oldest = queue.oldest_entered_at
    ? timer(queue.oldest_entered_at, { limit: live.maxWaitS, cls: "wait" })
    : el("span", { class: "muted" }, "—");
  return el(
    "div",
    { class: "queue-line", dataset: { waitRow: "" } },
    el("div", { class: "queue-name" }, queue.name, queue.me ? el("span", { class: `chip member-${queue.me}` }, `você: ${MEMBER_STATUSES[queue.me] || queue.me}`) : null),
    el(
      "div",
      { class: "queue-stats" },
      el("span", {}, el("strong", {}, queue.waiting), " esperando"),
      el("span", {}, "maior espera ", oldest),
      el("span", {}, el("strong", {}, queue.agents.available), " livres"),
    ),
  );
}

/** The live state of the open protocol's call, in its header. */
function renderCallLive() {
  const node = $("#call-live");
  if (!state.protocol || !node) return;
  const number = state.protocol.number;
  const calls = live.sortedCalls((c) => c.protocol === number);
  const call = calls.find((c) => c.mine) || calls[0];
  const key = call ? `${call.linkedid}|${call.state}|${call.answered_at}|${call.entered_queue_at}` : "";
  if (key === state.liveKey) return;
  state.liveKey = key;
  if (!call) {
    replaceChildren(node, el("span", { class: "muted" }, "Sem chamada ativa"));
    return;
  }
  const waited = call.answered_at ? secondsBetween(call.entered_queue_at, call.answered_at) : null;
  replaceChildren(
    node,
    el("span", { class: `badge big state-${call.state}` }, CALL_STATES[call.state] || call.state),
    call.state === "connected"
      ? el("div", { class: "live-line" }, "há ", timer(call.answered_at))
      : el("div", { class: "live-line" }, "esperando há ", timer(call.entered_queue_at)),
    waited !== null
      ? el("div", { class: "live-line muted" }, `esperou ${duration(waited)}${call.queue ? ` na fila ${call.queue}` : ""}`)
      : call.queue
        ? el("div", { class: "live-line muted" }, `fila ${call.queue}`)
        : null,
  );
}

// ------------------------------------------------------------- lifecycle

async function loadLifecycle() {
  try {
    state.lifecycle = await api("/api/v1/lifecycle");
    $("#lifecycle-missing").hidden = true;
  } catch (exc) {
    state.lifecycle = null;
    $("#lifecycle-missing").hidden = false;
    if (exc instanceof ApiError && exc.status === 404) setTimeout(loadLifecycle, 60000);
  }
  if (state.protocol && !state.dirty) renderProtocol();
}

function statusInfo(code) {
  const known = state.lifecycle && state.lifecycle.statuses.find((s) => s.code === code);
  return {
    label: known ? known.label_pt : FALLBACK_STATUS_LABELS[code] || code,
    final: known ? Boolean(known.final) : FALLBACK_FINAL.has(code),
  };
}

function subjectLabel(code) {
  if (!code) return null;
  const known = state.lifecycle && state.lifecycle.subjects.find((s) => s.code === code);
  return known ? known.label_pt : code;
}

function departmentLabel(code) {
  if (!code) return null;
  const known = ((state.lifecycle && state.lifecycle.departments) || []).find(
    (d) => codeAndLabel(d)[0] === code,
  );
  return known ? codeAndLabel(known)[1] : code;
}

function codeAndLabel(item) {
  if (item && typeof item === "object") return [item.code, item.label_pt || item.label || item.code];
  return [String(item), String(item)];
}

// -------------------------------------------------------------- protocol

async function openProtocol(raw, { push = true } = {}) {
  const number = String(raw || "").replace(/\D/g, "");
  if (!number) {
    showCallError("Digite o número do protocolo (só algarismos).");
    return;
  }
  if (state.protocol && state.protocol.number === number) {
    if (push) setUrl(number);
    return;
  }
  if (state.dirty && !window.confirm("Há alterações não salvas neste protocolo. Descartar?")) return;
  const ticket = ++state.loading;
  try {
    const protocol = await api(`/api/v1/protocols/${encodeURIComponent(number)}`);
    if (ticket !== state.loading) return;
    state.protocol = protocol;
    state.dirty = false;
    state.liveKey = "-";
    if (push) setUrl(number);
    showCallError("");
    renderProtocol();
    renderSidebar();
    loadHistory(protocol);
  } catch (exc) {
    if (ticket !== state.loading) return;
    const message =
      exc.status === 404
        ? `Protocolo ${groupDigits(number)} não encontrado.`
        : exc.status === 400
          ? `Número de protocolo inválido: ${exc.message}`
          : `Não foi possível abrir o protocolo: ${exc.message}`;
    showCallError(message);
  }
}

function setUrl(number) {
  const path = `/agent/calls/${encodeURIComponent(number)}`;
  if (window.location.pathname !== path) window.history.pushState({}, "", path);
  document.title = `${groupDigits(number)} · Painel do atendente · SAC`;
}

function showCallError(message) {
  const node = $("#call-error");
  node.textContent = message;
  node.hidden = !message;
  if (message && !state.protocol) $("#call-empty").hidden = false;
}

async function reloadProtocol() {
  const protocol = await api(`/api/v1/protocols/${encodeURIComponent(state.protocol.number)}`);
  state.protocol = protocol;
  state.dirty = false;
  renderProtocol();
}

function renderProtocol() {
  const p = state.protocol;
  $("#call-empty").hidden = true;
  $("#call").hidden = false;
  $("#call-number").textContent = groupDigits(p.number);
  $("#call-number").dataset.number = p.number;
  const status = statusInfo(p.status);
  replaceChildren(
    $("#call-meta"),
    el("span", { class: `badge status ${status.final ? "final" : "open"}`, id: "status-badge" }, status.label),
    el("span", {}, `aberto em ${formatDateTime(p.opened_at)}`),
    p.subject ? el("span", {}, subjectLabel(p.subject)) : null,
    p.due_at ? el("span", { class: dueClass(p, status) }, `prazo ${formatDateTime(p.due_at)}`) : null,
  );
  renderCustomer(p);
  fillDetailsForm(p);
  renderStatus(p, status);
  renderTimeline(p);
  state.liveKey = "-";
  renderCallLive();
}

function dueClass(p, status) {
  return !status.final && p.due_at && Date.parse(p.due_at) < Date.now() ? "overdue" : "";
}

function renderCustomer(p) {
  const fact = (label, value, cls = "") => [el("dt", {}, label), el("dd", { class: cls }, value || "—")];
  replaceChildren(
    $("#customer-facts"),
    fact("Telefone", formatPhone(p.caller_e164 || p.caller_number), "strong"),
    fact("Nome", p.customer_name || p.caller_name),
    fact("CPF/CNPJ", p.customer_document ? formatDocument(p.customer_document) : null),
    fact("E-mail", p.customer_email),
    fact("Número discado", p.called_number),
    fact("Setor", departmentLabel(p.department)),
    fact("Atendente", p.agent),
  );
}

// --------------------------------------------------------------- history

async function loadHistory(p) {
  const list = $("#history");
  replaceChildren(list, el("li", { class: "muted" }, "Carregando…"));
  $("#history-empty").hidden = true;
  const phone = p.caller_e164 || p.caller_number;
  const queries = [];
  if (phone) queries.push(`phone=${encodeURIComponent(phone)}`);
  if (p.customer_document) queries.push(`document=${encodeURIComponent(p.customer_document)}`);
  const found = new Map();
  let failure = null;
  for (const query of queries) {
    try {
      const page = await api(`/api/v1/protocols?${query}&limit=50`);
      for (const item of page.items) found.set(item.number, item);
    } catch (exc) {
      failure = exc;
    }
  }
  if (!state.protocol || state.protocol.number !== p.number) return; // another one was opened
  found.delete(p.number);
  const items = [...found.values()].sort((a, b) => (b.opened_at || "").localeCompare(a.opened_at || ""));
  const open = items.filter((i) => !statusInfo(i.status).final);
  const closed = items.filter((i) => statusInfo(i.status).final);
  $("#history-count").textContent = items.length;
  const empty = $("#history-empty");
  empty.hidden = items.length > 0;
  empty.textContent =
    !queries.length || (failure && failure.status === 400)
      ? "Número não identificado: não há como buscar outros protocolos."
      : failure
        ? `Não foi possível buscar: ${failure.message}`
        : "Nenhum outro protocolo deste cliente.";
  replaceChildren(
    list,
    open.length ? el("li", { class: "history-group" }, `Em aberto (${open.length})`) : null,
    open.map(historyItem),
    closed.length ? el("li", { class: "history-group" }, `Encerrados (${closed.length})`) : null,
    closed.map(historyItem),
  );
}

function historyItem(item) {
  const status = statusInfo(item.status);
  return el(
    "li",
    { class: `history-item ${status.final ? "final" : "open"}` },
    el(
      "a",
      {
        href: `/agent/calls/${encodeURIComponent(item.number)}`,
        onclick: (e) => {
          e.preventDefault();
          openProtocol(item.number);
        },
      },
      groupDigits(item.number),
    ),
    el("span", { class: `badge status ${status.final ? "final" : "open"}` }, status.label),
    el("span", { class: "history-subject" }, subjectLabel(item.subject) || "sem assunto"),
    el("span", { class: "muted" }, formatDateTime(item.opened_at)),
    !status.final && item.due_at
      ? el("span", { class: `due ${dueClass(item, status)}` }, `prazo ${formatDateTime(item.due_at)}`)
      : null,
  );
}

// ----------------------------------------------------------------- forms

function bindForms() {
  $("#open-form").addEventListener("submit", (e) => {
    e.preventDefault();
    openProtocol($("#open-number").value);
    $("#open-number").value = "";
  });
  $("#copy-number").addEventListener("click", copyNumber);
  const details = $("#details-form");
  details.addEventListener("input", () => {
    state.dirty = true;
    $("#details-state").textContent = "Alterações não salvas";
  });
  details.addEventListener("submit", (e) => {
    e.preventDefault();
    saveDetails();
  });
  details.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      saveDetails();
    }
  });
  const doc = $("#f-document");
  doc.addEventListener("input", () => showDocumentCheck(false));
  doc.addEventListener("blur", () => {
    const check = showDocumentCheck(true);
    if (check.ok && check.digits) doc.value = formatDocument(check.digits);
  });
  $("#f-email").addEventListener("input", () => setNote("#f-email-note", ""));
  $("#status-form").addEventListener("submit", (e) => {
    e.preventDefault();
    changeStatus();
  });
}

async function copyNumber() {
  const number = $("#call-number").dataset.number;
  try {
    await navigator.clipboard.writeText(number);
    toast("Número copiado", "ok", 1500);
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("#call-number"));
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
  }
}

function setNote(selector, message, kind = "") {
  const node = $(selector);
  node.textContent = message;
  node.className = `field-note ${kind}`;
}

/** Validate the CPF/CNPJ field; while typing, only complain once it is long enough. */
function showDocumentCheck(final) {
  const input = $("#f-document");
  const check = checkDocument(input.value);
  const complete = check.digits.length === 11 || check.digits.length >= 14;
  if (!check.digits && !input.value.trim()) {
    setNote("#f-document-note", "");
    input.classList.remove("invalid", "valid");
  } else if (check.ok) {
    setNote("#f-document-note", check.message, "ok");
    input.classList.add("valid");
    input.classList.remove("invalid");
  } else if (final || complete) {
    setNote("#f-document-note", check.message, "error");
    input.classList.add("invalid");
    input.classList.remove("valid");
  } else {
    setNote("#f-document-note", "");
    input.classList.remove("invalid", "valid");
  }
  return check;
}

function fillDetailsForm(p) {
  const subject = $("#f-subject");
  const options = [el("option", { value: "" }, "— escolha o assunto —")];
  const subjects = (state.lifecycle && state.lifecycle.subjects) || [];
  for (const s of subjects) options.push(el("option", { value: s.code }, s.label_pt));
  if (p.subject && !subjects.some((s) => s.code === p.subject)) {
    options.push(el("option", { value: p.subject }, p.subject));
  }
  replaceChildren(subject, options);
  subject.value = p.subject || "";
  $("#f-document").value = p.customer_document ? formatDocument(p.customer_document) : "";
  $("#f-name").value = p.customer_name || "";
  $("#f-email").value = p.customer_email || "";
  $("#f-notes").value = p.notes || "";
  $("#f-document").classList.remove("invalid", "valid");
  setNote("#f-document-note", "");
  setNote("#f-email-note", "");
  $("#details-state").textContent = p.updated_at ? `Atualizado em ${formatDateTime(p.updated_at)}` : "";
}

async function saveDetails() {
  const p = state.protocol;
  if (!p) return;
  const check = showDocumentCheck(true);
  if (!check.ok) {
    $("#f-document").focus();
    return;
  }
  const email = $("#f-email");
  if (email.value.trim() && !email.validity.valid) {
    setNote("#f-email-note", "E-mail inválido.", "error");
    email.focus();
    return;
  }
  const wanted = {
    subject: $("#f-subject").value || null,
    customer_document: check.digits || null,
    customer_name: $("#f-name").value.trim() || null,
    customer_email: email.value.trim() || null,
    notes: $("#f-notes").value.trim() || null,
  };
  const changes = {};
  for (const [key, value] of Object.entries(wanted)) {
    if ((p[key] || null) !== value) changes[key] = value;
  }
  if (!Object.keys(changes).length) {
    state.dirty = false;
    $("#details-state").textContent = "Nada a salvar";
    return;
  }
  const button = $("#save-details");
  button.disabled = true;
  $("#details-state").textContent = "Salvando…";
  try {
    const updated = await api(`/api/v1/protocols/${encodeURIComponent(p.number)}`, {
      method: "PATCH",
      body: changes,
    });
    if (updated && updated.number === p.number && updated.events) {
      state.protocol = updated;
      state.dirty = false;
      renderProtocol();
    } else {
      await reloadProtocol();
    }
    $("#details-state").textContent = `Salvo às ${formatTime(new Date().toISOString())}`;
    toast("Protocolo atualizado", "ok", 2000);
    if ("customer_document" in changes) loadHistory(state.protocol);
  } catch (exc) {
    $("#details-state").textContent = "Não salvo";
    const field = exc.details && exc.details.field;
    if (field === "customer_document") setNote("#f-document-note", exc.message, "error");
    else if (field === "customer_email") setNote("#f-email-note", exc.message, "error");
    toast(`Não foi possível salvar: ${exc.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

function renderStatus(p, status) {
  replaceChildren(
    $("#status-now"),
    el("span", { class: `badge big status ${status.final ? "final" : "open"}` }, status.label),
    p.resolved_at ? el("span", { class: "muted" }, `resolvido em ${formatDateTime(p.resolved_at)}`) : null,
  );
  const form = $("#status-form");
  const select = $("#s-to");
  const allowed = (state.lifecycle && state.lifecycle.transitions[p.status]) || [];
  replaceChildren(
    select,
    el("option", { value: "" }, allowed.length ? "— nova situação —" : "nenhuma mudança possível"),
    allowed.map((code) => el("option", { value: code }, statusInfo(code).label)),
  );
  const departments = (state.lifecycle && state.lifecycle.departments) || [];
  replaceChildren(
    $("#s-department"),
    el("option", { value: "" }, "— mesmo setor —"),
    departments.map((d) => {
      const [code, label] = codeAndLabel(d);
      return el("option", { value: code }, label);
    }),
  );
  $("#s-department-field").hidden = departments.length === 0;
  $("#s-customer-note").value = "";
  $("#s-internal-note").value = "";
  $("#status-error").hidden = true;
  for (const control of form.elements) control.disabled = !state.lifecycle || allowed.length === 0;
}

async function changeStatus() {
  const p = state.protocol;
  const to = $("#s-to").value;
  const error = $("#status-error");
  if (!to) {
    error.textContent = "Escolha a nova situação.";
    error.hidden = false;
    return;
  }
  const body = { to_status: to };
  const department = $("#s-department").value;
  const customerNote = $("#s-customer-note").value.trim();
  const internalNote = $("#s-internal-note").value.trim();
  if (department) body.department = department;
  if (customerNote) body.customer_note = customerNote;
  if (internalNote) body.internal_note = internalNote;
  const button = $("#change-status");
  button.disabled = true;
  try {
    await api(`/api/v1/protocols/${encodeURIComponent(p.number)}/transitions`, { method: "POST", body });
    await reloadProtocol();
    toast(`Situação: ${statusInfo(to).label}`, "ok", 2500);
  } catch (exc) {
    let message = exc.message;
    if (exc.status === 409) {
      const allowed = exc.details.allowed || exc.details.allowed_statuses || [];
      message = `Mudança não permitida a partir de "${statusInfo(p.status).label}".`;
      if (allowed.length) message += ` Permitidas: ${allowed.map((c) => statusInfo(c).label).join(", ")}.`;
      reloadProtocol().catch(() => {});
    }
    error.textContent = message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

// -------------------------------------------------------------- timeline

function renderTimeline(p) {
  const events = [...(p.events || [])].reverse();
  replaceChildren(
    $("#timeline"),
    events.length ? events.map(timelineItem) : el("li", { class: "muted" }, "Sem eventos."),
  );
}

function timelineItem(e) {
  const lines = [];
  if (e.kind === "menu_choice" && e.data && e.data.choice) {
    lines.push(`Menu: ${MENU_CHOICES[e.data.choice] || e.data.choice}`);
  }
  if (e.kind === "answered" && e.data && e.data.agent) {
    // the call log: who took the call, from which queue
    const where = e.data.queue ? ` (fila ${e.data.queue})` : "";
    lines.push(`Atendente: ${e.data.agent}${where}`);
  }
  if (e.to_status) {
    const from = e.from_status ? `${statusInfo(e.from_status).label} → ` : "";
    lines.push(`${from}${statusInfo(e.to_status).label}`);
  }
  let title = EVENT_KINDS[e.kind] || e.kind;
  if (e.kind === "field" && e.data && e.data.field) {
    const name = e.data.field;
    title = FIELD_CHANGED[name] || `${name}: alterado`;
    if ("to" in e.data) {
      const labels = { subject: subjectLabel, department: departmentLabel };
      const show = (v) => (v === null || v === undefined || v === "" ? "—" : (labels[name] || String)(v));
      if (name !== "notes") lines.push(`${show(e.data.from)} → ${show(e.data.to)}`);
    }
  } else if (e.department && e.kind === "status") {
    lines.push(`Setor: ${departmentLabel(e.department)}`);
  }
  return el(
    "li",
    { class: `timeline-item kind-${e.kind}` },
    el(
      "div",
      { class: "timeline-head" },
      el("strong", {}, title),
      el("span", { class: "muted" }, `${formatDateTime(e.at)} · ${ACTORS[e.actor] || e.actor}`),
    ),
    lines.map((line) => el("div", {}, line)),
    e.customer_note ? el("div", { class: "note customer" }, `Ao cliente: ${e.customer_note}`) : null,
    e.internal_note ? el("div", { class: "note internal" }, `Interna: ${e.internal_note}`) : null,
  );
}
