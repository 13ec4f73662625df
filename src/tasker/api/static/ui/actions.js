// Operator actions, each one confirmed first, each one a single call of an existing API route.

import { call } from "./api.js";
import { confirmAction } from "./confirm.js";

const TASK = (uuid) => `v1/tasks/${encodeURIComponent(uuid)}`;

function parseJson(text) {
  if (!text) return undefined;
  try {
    JSON.parse(text);
    return undefined;
  } catch (error) {
    return `the result is not valid JSON: ${error.message}`;
  }
}

/** kind: reset | resolve | complete. Resolves to a message when done, null when cancelled. */
export async function stepAction(kind, taskUuid, step) {
  const base = { fields: [{ name: "reason", label: "Reason", value: "" }] };
  const what = {
    reset: {
      title: `Retry step ${step.name}`,
      message: "The step runs again with a fresh attempt count; the task resumes.",
      confirmLabel: "Reset for retry",
      body: (v) => ({ action_type: "reset_for_retry", reset_by: v.by, reason: v.reason || null }),
    },
    resolve: {
      title: `Resolve step ${step.name} manually`,
      message: "The step is marked resolved without running; the steps depending on it run.",
      confirmLabel: "Resolve manually",
      body: (v) => ({ action_type: "resolve_manually", resolved_by: v.by, reason: v.reason || null }),
    },
    complete: {
      title: `Complete step ${step.name} manually`,
      message: "The step is marked complete with the result you give (JSON); the steps depending on it get it.",
      confirmLabel: "Complete manually",
      fields: [
        { name: "result", label: "Result (JSON)", kind: "textarea", value: "{}", validate: parseJson },
        ...base.fields,
      ],
      body: (v) => ({
        action_type: "complete_manually",
        completed_by: v.by,
        reason: v.reason || null,
        completion_data: { result: v.result ? JSON.parse(v.result) : null },
      }),
    },
  }[kind];
  const values = await confirmAction({ fields: base.fields, ...what });
  if (!values) return null;
  await call(`${TASK(taskUuid)}/workflow_steps/${encodeURIComponent(step.step_uuid)}`, { method: "PATCH", body: what.body(values) });
  return `${what.confirmLabel}: step ${step.name} done`;
}

export async function retryFailed(taskUuid, label) {
  const values = await confirmAction({
    title: "Retry every failed step",
    message: `Every failed step of task ${label} is reset for retry; the task resumes.`,
    confirmLabel: "Retry failed steps",
  });
  if (!values) return null;
  await call(`${TASK(taskUuid)}/retry_failed`, { method: "POST" });
  return `failed steps of ${label} reset for retry`;
}

export async function cancelTask(taskUuid, label) {
  const values = await confirmAction({
    title: "Cancel the task",
    message: `Every unfinished step of task ${label} is cancelled, then the task. This cannot be undone.`,
    confirmLabel: "Cancel task",
    danger: true,
  });
  if (!values) return null;
  await call(TASK(taskUuid), { method: "DELETE" });
  return `task ${label} cancelled`;
}

export async function closeDlqEntry(entry) {
  const values = await confirmAction({
    title: "Close the dead-letter entry",
    message: "Records what the investigation concluded. The task itself is not changed: use the step actions for that.",
    confirmLabel: "Close entry",
    fields: [
      { name: "status", label: "Resolution", kind: "select", value: "manually_resolved", options: ["manually_resolved", "permanently_failed", "cancelled"] },
      { name: "notes", label: "Notes", kind: "textarea", value: "" },
    ],
  });
  if (!values) return null;
  await call(`v1/dlq/entry/${encodeURIComponent(entry.dlq_entry_uuid)}`, {
    method: "PATCH",
    body: { resolution_status: values.status, resolved_by: values.by, resolution_notes: values.notes || null },
  });
  return `dead-letter entry closed as ${values.status}`;
}
