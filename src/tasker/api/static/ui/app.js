// The console's shell: a hash router, the sign-in form, and plain error reporting (401, 403 and the rest).

import { ApiError, clearCredentials, credentials, setCredentials } from "./api.js";
import { dlqPage } from "./dlq.js";
import { h } from "./dom.js";
import { taskPage } from "./task.js";
import { tasksPage } from "./tasks.js";

const ROUTES = [
  [/^#\/tasks\/([0-9a-fA-F-]{36})$/, taskPage, "tasks"],
  [/^#\/dlq$/, dlqPage, "dlq"],
  [/^#\/tasks$/, tasksPage, "tasks"],
];
let generation = 0;

function flash(message, kind = "ok") {
  const box = document.getElementById("flash");
  box.className = `flash flash-${kind}`;
  box.textContent = message;
  box.hidden = false;
}

function clearFlash() {
  const box = document.getElementById("flash");
  box.hidden = true;
  box.textContent = "";
}

function describe(error) {
  if (error instanceof ApiError && error.status === 403) return `Permission denied: ${error.message}.`;
  if (error instanceof ApiError) return `${error.status ? `${error.status} ` : ""}${error.code}: ${error.message}`;
  return `Unexpected error: ${error && error.message ? error.message : String(error)}`;
}

const ctx = {
  done(message) {
    render().then(() => flash(message, "ok"));
  },
  failed(error) {
    if (error instanceof ApiError && error.status === 401) {
      render();
      return;
    }
    flash(describe(error), "error");
  },
};

function session() {
  const box = document.getElementById("session");
  const held = credentials();
  box.replaceChildren(
    held
      ? h("span", null, `Signed in with ${held.kind === "bearer" ? "a bearer token" : "an API key"} `,
          h("button", { class: "link", id: "sign-out", onclick: () => { clearCredentials(); render(); } }, "Sign out"))
      : h("span", { class: "muted" }, "No credentials"),
  );
}

function signIn(error) {
  const kind = h("select", { name: "kind" }, h("option", { value: "api_key" }, "API key"), h("option", { value: "bearer" }, "Bearer token (JWT)"));
  const secret = h("input", { name: "secret", type: "password", required: true, autocomplete: "off", id: "secret" });
  return h(
    "section",
    { class: "page signin", dataset: { page: "signin" } },
    h("h1", null, "Sign in"),
    h("p", { class: "problem", id: "auth-problem" }, error.message),
    h("p", null, "This server requires credentials. They are kept in this browser tab only (sessionStorage) and sent with every call to the API."),
    h(
      "form",
      {
        id: "signin",
        onsubmit: (event) => {
          event.preventDefault();
          setCredentials(kind.value, secret.value.trim());
          render();
        },
      },
      h("label", null, "Kind", kind),
      h("label", null, "Secret", secret),
      h("button", { type: "submit", class: "primary" }, "Sign in"),
    ),
  );
}

function failure(error) {
  if (error instanceof ApiError && error.status === 401) {
    clearCredentials(); // refused: keep no secret the server does not accept
    session();
    return signIn(error);
  }
  const kind = error instanceof ApiError && error.status === 403 ? "forbidden" : "error";
  return h(
    "section",
    { class: "page", dataset: { page: kind } },
    h("div", { class: `problem problem-${kind}`, id: "problem", role: "alert" }, describe(error)),
    kind === "forbidden" ? h("p", { class: "muted" }, "Ask for credentials that grant this permission, or sign in with others.") : null,
  );
}

async function render() {
  const mine = ++generation;
  const [path, search] = (window.location.hash || "#/tasks").split("?");
  const params = new URLSearchParams(search || "");
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  const view = document.getElementById("view");
  session();
  if (!route) {
    window.location.replace("#/tasks");
    return;
  }
  const [pattern, page, nav] = route;
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === nav);
  view.dataset.ready = "false";
  let content;
  try {
    content = await page(params, path.match(pattern).slice(1), ctx);
  } catch (error) {
    content = failure(error);
  }
  if (mine !== generation) return; // a newer navigation won
  view.replaceChildren(content);
  view.dataset.ready = "true";
}

window.addEventListener("hashchange", () => {
  clearFlash();
  render();
});
render();
