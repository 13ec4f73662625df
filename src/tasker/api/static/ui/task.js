// One task: its DAG, its steps (timings, attempts, errors, operator actions) and its audit trail.

import { cancelTask, retryFailed, stepAction } from "./actions.js";
import { call } from "./api.js";
import { dagSvg } from "./dag.js";
import { duration, h, jsonText, ms, shortId, stateBadge, timeEl } from "./dom.js";

const FINISHED = new Set(["complete", "error", "cancelled", "resolved_manually"]);

function errorOf(step) {
  const results = step.results;
  return results && typeof results === "object" && results.error && typeof results.error === "object" ? results.error : null;
}

function errorBox(step) {
  const error = errorOf(step);
  if (!error) return null;
  return h(
    "div",
    { class: "step-error", dataset: { step: step.name } },
    h("div", { class: "step-error-head" }, `Step ${step.name} failed`, error.error_type ? ` (${error.error_type}${error.error_code ? `, ${error.error_code}` : ""})` : ""),
    h("pre", { class: "error-message" }, String(error.message ?? "")),
    error.stack_trace ? h("details", null, h("summary", null, "Stack trace"), h("pre", null, String(error.stack_trace))) : null,
  );
}

function fact(label, value) {
  return [h("dt", null, label), h("dd", null, value === null || value === undefined || value === "" ? h("span", { class: "muted" }, "—") : value)];
}

function header(task, template, dlq, ctx) {
  const label = `${task.namespace}/${task.name}`;
  const run = (action) => async () => {
    try {
      const message = await action();
      if (message) ctx.done(message);
    } catch (error) {
      ctx.failed(error);
    }
  };
  const buttons = [];
  if (task.failed_steps > 0 || task.status === "error") {
    buttons.push(h("button", { class: "primary", "data-action": "retry-failed", onclick: run(() => retryFailed(task.task_uuid, label)) }, "Retry failed steps"));
  }
  if (!FINISHED.has(task.status)) {
    buttons.push(h("button", { class: "danger", "data-action": "cancel-task", onclick: run(() => cancelTask(task.task_uuid, label)) }, "Cancel task"));
  }
  return h(
    "div",
    { class: "task-head" },
    h("h1", null, task.name, " ", stateBadge(task.status)),
    h("p", { class: "muted", id: "template-description" }, template.description || ""),
    h(
      "dl",
      { class: "facts" },
      fact("Task", h("code", null, task.task_uuid)),
      fact("Template", `${task.namespace} / ${task.name} ${task.version}`),
      fact("Steps", `${task.completed_steps} of ${task.total_steps} complete, ${task.failed_steps} failed (${Math.round(task.completion_percentage)} %)`),
      fact("Created", timeEl(task.created_at)),
      fact("Finished", task.completed_at ? [timeEl(task.completed_at), ` (${duration(task.created_at, task.completed_at)})`] : null),
      fact("Initiator", task.initiator),
      fact("Source", task.source_system),
      fact("Reason", task.reason),
      fact("Dead letter", dlq.in_dlq ? h("a", { href: "#/dlq?status=", class: "dlq-flag" }, `${dlq.dlq_reason} (${dlq.resolution_status})`) : null),
      fact("Next", task.recommended_action),
    ),
    buttons.length ? h("div", { class: "actions" }, buttons) : null,
  );
}

function stepRow(task, step, ctx) {
  const actions = [];
  if (step.current_state === "error") {
    for (const [kind, label] of [["reset", "Retry"], ["resolve", "Skip"], ["complete", "Complete…"]]) {
      actions.push(
        h("button", {
          class: "small",
          "data-action": kind,
          onclick: async () => {
            try {
              const message = await stepAction(kind, task.task_uuid, step);
              if (message) ctx.done(message);
            } catch (error) {
              ctx.failed(error);
            }
          },
        }, label),
      );
    }
  }
  const error = errorOf(step);
  return h(
    "tr",
    { id: `step-${step.step_uuid}`, dataset: { step: step.name, state: step.current_state } },
    h("td", null, h("strong", null, step.name), h("div", { class: "muted small" }, shortId(step.step_uuid))),
    h("td", null, stateBadge(step.current_state)),
    h("td", { class: "num" }, `${step.attempts}/${step.max_attempts}`),
    h("td", null, timeEl(step.last_attempted_at)),
    h("td", null, timeEl(step.completed_at)),
    h("td", { class: "num" }, step.completed_at && step.last_attempted_at ? duration(step.last_attempted_at, step.completed_at) : ""),
    h("td", null, step.next_retry_at ? timeEl(step.next_retry_at) : ""),
    h("td", { class: "error-cell" }, error ? String(error.message ?? "") : ""),
    h("td", null, actions.length ? h("div", { class: "row-actions" }, actions) : null),
  );
}

function auditDetails(event) {
  if (event.kind === "step_result") {
    return [
      h("span", { class: event.success ? "ok" : "bad" }, event.success ? "success" : "failure"),
      event.execution_time_ms !== null ? ` in ${ms(event.execution_time_ms)}` : "",
      event.worker_uuid ? h("span", { class: "muted" }, ` · worker ${shortId(event.worker_uuid)}`) : "",
    ];
  }
  const metadata = event.metadata;
  if (!metadata || (typeof metadata === "object" && Object.keys(metadata).length === 0)) return "";
  return h("code", { class: "metadata" }, jsonText(metadata, 400).replace(/\s*\n\s*/g, " "));
}

const KIND_LABEL = { task_transition: "task", step_transition: "step", step_result: "result" };

function auditTable(audit) {
  return h(
    "section",
    { class: "card" },
    h("h2", null, "Audit trail"),
    audit.truncated ? h("p", { class: "muted" }, `Showing the first ${audit.limit} events.`) : null,
    h(
      "table",
      { class: "grid compact", id: "audit-trail" },
      h("thead", null, h("tr", null, ["Time", "Kind", "Step", "Change", "Details"].map((c) => h("th", null, c)))),
      h(
        "tbody",
        null,
        audit.events.map((event) =>
          h(
            "tr",
            { class: `audit-${event.kind}`, dataset: { kind: event.kind, step: event.step_name || "" } },
            h("td", { class: "nowrap" }, timeEl(event.at, true)),
            h("td", null, KIND_LABEL[event.kind] || event.kind),
            h("td", null, event.step_name || ""),
            h("td", null, event.from_state ? `${event.from_state} → ` : "", h("strong", null, event.to_state)),
            h("td", null, auditDetails(event)),
          ),
        ),
      ),
    ),
  );
}

export async function taskPage(params, [uuid], ctx) {
  const base = `v1/tasks/${encodeURIComponent(uuid)}`;
  const [summary, audit] = await Promise.all([call(`${base}/summary`), call(`${base}/audit`)]);
  const { task, template, steps, edges, dlq } = summary;
  const select = (step) => {
    const target = document.getElementById(`step-${step.step_uuid}`);
    if (!target) return;
    document.querySelectorAll("tr.selected").forEach((el) => el.classList.remove("selected"));
    target.classList.add("selected");
    target.scrollIntoView({ block: "center", behavior: "smooth" });
  };
  const errors = steps.map(errorBox).filter(Boolean);
  return h(
    "section",
    { class: "page", dataset: { page: "task", taskUuid: task.task_uuid } },
    h("p", { class: "crumbs" }, h("a", { href: "#/tasks" }, "Tasks"), " / ", `${task.namespace} / ${task.name}`),
    header(task, template, dlq, ctx),
    errors.length ? h("section", { class: "card errors", id: "step-errors" }, h("h2", null, "Errors"), errors) : null,
    h(
      "section",
      { class: "card" },
      h("h2", null, "Workflow"),
      h("div", { class: "dag-wrap", id: "dag" }, dagSvg(steps, edges, select)),
      h("div", { class: "legend" }, ["pending", "enqueued", "in_progress", "waiting_for_retry", "complete", "error", "resolved_manually", "cancelled"].map(stateBadge)),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", null, "Steps"),
      h(
        "table",
        { class: "grid", id: "step-table" },
        h("thead", null, h("tr", null, ["Step", "State", "Attempts", "Last attempt", "Finished", "Took", "Next retry", "Error", ""].map((c) => h("th", null, c)))),
        h("tbody", null, steps.map((step) => stepRow(task, step, ctx))),
      ),
    ),
    auditTable(audit),
  );
}
