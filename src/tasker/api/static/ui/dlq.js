// The dead-letter queue: entries with the failed steps of their snapshot, and the operator actions on them.

import { closeDlqEntry, retryFailed, stepAction } from "./actions.js";
import { call, query } from "./api.js";
import { h, shortId, stateBadge, timeEl } from "./dom.js";

const PER_PAGE = 25;
const RESOLUTIONS = ["pending", "manually_resolved", "permanently_failed", "cancelled"];

function filters(params) {
  const status = h(
    "select",
    { name: "status" },
    h("option", { value: "" }, "any"),
    RESOLUTIONS.map((r) => h("option", { value: r, selected: (params.get("status") ?? "pending") === r }, r.replaceAll("_", " "))),
  );
  return h(
    "form",
    {
      class: "filters",
      id: "dlq-filters",
      onsubmit: (event) => {
        event.preventDefault();
        window.location.hash = `#/dlq?status=${encodeURIComponent(status.value)}`;
      },
    },
    h("label", null, "Resolution", status),
    h("button", { type: "submit", class: "primary" }, "Show"),
  );
}

function failedSteps(entry) {
  const steps = entry.task_snapshot && Array.isArray(entry.task_snapshot.steps) ? entry.task_snapshot.steps : [];
  return steps.filter((s) => s && (s.current_state === "error" || (s.error && typeof s.error === "object")));
}

function entryRow(entry, ctx) {
  const snapshot = entry.task_snapshot || {};
  const label = `${snapshot.namespace_name ?? "?"}/${snapshot.task_name ?? shortId(entry.task_uuid)}`;
  const run = (action) => async () => {
    try {
      const message = await action();
      if (message) ctx.done(message);
    } catch (error) {
      ctx.failed(error);
    }
  };
  const pending = entry.resolution_status === "pending";
  const steps = failedSteps(entry).map((step) => {
    const target = { step_uuid: step.workflow_step_uuid, name: String(step.name) };
    return h(
      "li",
      { dataset: { step: target.name } },
      h("strong", null, target.name), " ", stateBadge(step.current_state), ` attempts ${step.attempts}/${step.max_attempts}`,
      step.error ? h("pre", { class: "error-message" }, String(step.error.message ?? "")) : null,
      pending && step.current_state === "error"
        ? h(
            "div",
            { class: "actions" },
            h("button", { class: "small", "data-action": "reset", onclick: run(() => stepAction("reset", entry.task_uuid, target)) }, "Retry step"),
            h("button", { class: "small", "data-action": "resolve", onclick: run(() => stepAction("resolve", entry.task_uuid, target)) }, "Skip step"),
            h("button", { class: "small", "data-action": "complete", onclick: run(() => stepAction("complete", entry.task_uuid, target)) }, "Complete step…"),
          )
        : null,
    );
  });
  return h(
    "article",
    { class: "card dlq-entry", dataset: { entryUuid: entry.dlq_entry_uuid, taskUuid: entry.task_uuid, resolution: entry.resolution_status } },
    h(
      "header",
      null,
      h("a", { href: `#/tasks/${encodeURIComponent(entry.task_uuid)}`, class: "task-link" }, label),
      " ",
      h("span", { class: "badge reason" }, entry.dlq_reason),
      " ",
      stateBadge(entry.resolution_status),
      h("span", { class: "muted small" }, " was ", entry.original_state, " · ", timeEl(entry.dlq_timestamp)),
    ),
    entry.resolution_status !== "pending"
      ? h("p", { class: "muted" }, `Closed by ${entry.resolved_by ?? "?"}`, entry.resolution_notes ? `: ${entry.resolution_notes}` : "", " · ", timeEl(entry.resolution_timestamp))
      : null,
    steps.length ? h("ul", { class: "failed-steps" }, steps) : h("p", { class: "muted" }, "No failed step in the snapshot."),
    pending
      ? h(
          "div",
          { class: "actions" },
          h("button", { class: "primary", "data-action": "retry-failed", onclick: run(() => retryFailed(entry.task_uuid, label)) }, "Retry failed steps"),
          h("button", { class: "secondary", "data-action": "close-entry", onclick: run(() => closeDlqEntry(entry)) }, "Close entry…"),
        )
      : null,
  );
}

export async function dlqPage(params, _match, ctx) {
  const status = params.get("status") ?? "pending";
  const page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
  const data = await call(`v1/dlq?${query({ resolution_status: status, limit: PER_PAGE, offset: (page - 1) * PER_PAGE })}`);
  const pages = Math.ceil(data.total / PER_PAGE);
  const to = (p) => `#/dlq?${query({ status, page: p })}`;
  return h(
    "section",
    { class: "page", dataset: { page: "dlq" } },
    h("h1", null, "Dead letters"),
    filters(params),
    h("div", { id: "dlq-entries" }, data.entries.length ? data.entries.map((e) => entryRow(e, ctx)) : h("p", { class: "empty" }, "No entry.")),
    h(
      "nav",
      { class: "pager" },
      page > 1 ? h("a", { href: to(page - 1), rel: "prev" }, "← Previous") : h("span", { class: "muted" }, "← Previous"),
      h("span", { class: "pager-info" }, `Page ${pages ? page : 0} of ${pages} · ${data.total} entr${data.total === 1 ? "y" : "ies"}`),
      page < pages ? h("a", { href: to(page + 1), rel: "next" }, "Next →") : h("span", { class: "muted" }, "Next →"),
    ),
  );
}
