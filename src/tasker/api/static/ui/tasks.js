// The task list: filters (namespace, name, state) and pages, all in the URL so a view can be shared.

import { call, query } from "./api.js";
import { h, shortId, stateBadge, timeEl } from "./dom.js";

export const TASK_STATES = [
  "pending", "initializing", "enqueuing_steps", "steps_in_process", "evaluating_results", "waiting_for_dependencies",
  "waiting_for_retry", "blocked_by_failures", "complete", "error", "cancelled", "resolved_manually",
];
const PER_PAGE = 25;

function filterForm(params, namespaces) {
  const namespace = h("input", { name: "namespace", value: params.get("namespace") || "", list: "namespaces", placeholder: "any" });
  const name = h("input", { name: "name", value: params.get("name") || "", placeholder: "any" });
  const state = h(
    "select",
    { name: "state" },
    h("option", { value: "" }, "any"),
    TASK_STATES.map((s) => h("option", { value: s, selected: params.get("state") === s }, s.replaceAll("_", " "))),
  );
  return h(
    "form",
    {
      class: "filters",
      id: "task-filters",
      onsubmit: (event) => {
        event.preventDefault();
        window.location.hash = `#/tasks?${query({ namespace: namespace.value.trim(), name: name.value.trim(), state: state.value })}`;
      },
    },
    h("label", null, "Namespace", namespace),
    h("datalist", { id: "namespaces" }, namespaces.map((n) => h("option", { value: n }))),
    h("label", null, "Task name", name),
    h("label", null, "State", state),
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("a", { href: "#/tasks", class: "button secondary" }, "Clear"),
  );
}

function pager(params, pagination) {
  const to = (page) => {
    const next = new URLSearchParams(params);
    next.set("page", String(page));
    return `#/tasks?${next}`;
  };
  const { page, total_pages: pages, total_count: total } = pagination;
  return h(
    "nav",
    { class: "pager", "aria-label": "pages" },
    pagination.has_previous ? h("a", { href: to(page - 1), rel: "prev" }, "← Previous") : h("span", { class: "muted" }, "← Previous"),
    h("span", { class: "pager-info" }, `Page ${pages ? page : 0} of ${pages} · ${total} task${total === 1 ? "" : "s"}`),
    pagination.has_next ? h("a", { href: to(page + 1), rel: "next" }, "Next →") : h("span", { class: "muted" }, "Next →"),
  );
}

function row(task) {
  const link = `#/tasks/${encodeURIComponent(task.task_uuid)}`;
  return h(
    "tr",
    { dataset: { taskUuid: task.task_uuid, state: task.status } },
    h("td", null, h("a", { href: link, class: "task-link" }, task.name), h("div", { class: "muted small" }, shortId(task.task_uuid))),
    h("td", null, task.namespace),
    h("td", null, task.version),
    h("td", null, stateBadge(task.status)),
    h("td", { class: "num" }, `${task.completed_steps}/${task.total_steps}`, task.failed_steps ? h("span", { class: "failed-count" }, ` · ${task.failed_steps} failed`) : null),
    h("td", null, task.initiator || h("span", { class: "muted" }, "—")),
    h("td", null, timeEl(task.created_at)),
    h("td", null, timeEl(task.completed_at)),
  );
}

export async function tasksPage(params) {
  const page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
  const perPage = Math.min(100, Math.max(1, Number.parseInt(params.get("per_page") || String(PER_PAGE), 10) || PER_PAGE));
  const filters = { namespace: params.get("namespace"), name: params.get("name"), state: params.get("state") };
  const [data, templates] = await Promise.all([
    call(`v1/tasks?${query({ ...filters, page, per_page: perPage })}`),
    call("v1/templates").catch(() => null), // only for the namespace suggestions: templates:read is optional here
  ]);
  const namespaces = templates ? templates.namespaces.map((n) => n.name) : [];
  const body = data.tasks.length
    ? h("tbody", null, data.tasks.map(row))
    : h("tbody", null, h("tr", null, h("td", { colspan: 8, class: "empty" }, "No task matches these filters.")));
  return h(
    "section",
    { class: "page", dataset: { page: "tasks" } },
    h("h1", null, "Tasks"),
    filterForm(params, namespaces),
    h(
      "table",
      { class: "grid", id: "task-table" },
      h("thead", null, h("tr", null, ["Task", "Namespace", "Version", "State", "Steps", "Initiator", "Created", "Finished"].map((c) => h("th", null, c)))),
      body,
    ),
    pager(params, data.pagination),
  );
}
