// Login with a token (kept by the server in an HttpOnly cookie), logout, and the
// name/extension shown in the top bar. Shared by the agent and supervisor pages.

import { api, ApiError } from "./api.js";
import { $ } from "./dom.js";

const ROLES = ["agent", "supervisor", "admin"];

function hasRole(viewer, role) {
  return ROLES.indexOf(viewer.role) >= ROLES.indexOf(role);
}

/**
 * Show the login form until a token with `role` is given, then call onReady(viewer).
 * A 401 later (token revoked, cookie expired) brings the form back.
 */
export async function startSession({ role, onReady }) {
  const login = $("#login");
  const app = $("#app");
  const form = $("#login-form");
  const error = $("#login-error");
  let ready = false;

  const showLogin = (message = "") => {
    app.hidden = true;
    $("#who").hidden = true;
    login.hidden = false;
    error.textContent = message;
    error.hidden = !message;
    $("#token").focus();
  };

  const enter = (viewer) => {
    if (!hasRole(viewer, role)) {
      showLogin(
        role === "supervisor"
          ? "Este token é de atendente: a visão do supervisor pede um token de supervisor."
          : "Este token não dá acesso ao painel.",
      );
      return;
    }
    login.hidden = true;
    app.hidden = false;
    $("#who").hidden = false;
    $("#who-name").textContent = viewer.name;
    const ext = $("#who-ext");
    if (ext) {
      ext.textContent = viewer.extension || "sem ramal";
      ext.classList.toggle("missing", !viewer.extension);
    }
    if (!ready) {
      ready = true;
      onReady(viewer);
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    if (!token) return showLogin("Cole o seu token de acesso.");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const viewer = await api("/api/v1/session", { method: "POST", body: { token } });
      $("#token").value = "";
      enter(viewer);
    } catch (exc) {
      showLogin(exc instanceof ApiError && exc.status === 401 ? "Token desconhecido ou revogado." : exc.message);
    } finally {
      button.disabled = false;
    }
  });

  $("#logout").addEventListener("click", async () => {
    try {
      await api("/api/v1/session", { method: "DELETE" });
    } finally {
      window.location.reload();
    }
  });

  window.addEventListener("sac:unauthorized", () => {
    if (ready) window.location.reload();
  });

  try {
    enter(await api("/api/v1/session"));
  } catch (exc) {
    showLogin(exc instanceof ApiError && exc.status !== 401 ? exc.message : "");
  }
}
