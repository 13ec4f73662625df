// Every operator action goes through this dialog: it says what will happen and asks for who does it (and why).

import { operator, setOperator } from "./api.js";
import { h } from "./dom.js";

/**
 * Ask for confirmation. fields: [{name, label, kind: "text"|"textarea"|"select", value, options, required}].
 * Resolves to the entered values (with "by"), or null when cancelled.
 */
export function confirmAction({ title, message, fields = [], confirmLabel = "Confirm", danger = false }) {
  const dialog = document.getElementById("confirm");
  const inputs = {};
  const byInput = h("input", { name: "by", value: operator() || "console", required: true, maxlength: 255, autocomplete: "username" });
  inputs.by = byInput;
  const rows = [h("label", null, "Your name", byInput)];
  for (const field of fields) {
    let input;
    if (field.kind === "select") {
      input = h("select", { name: field.name }, field.options.map((o) => h("option", { value: o, selected: o === field.value }, o)));
    } else if (field.kind === "textarea") {
      input = h("textarea", { name: field.name, rows: 4, placeholder: field.placeholder || "" });
      input.value = field.value || "";
    } else {
      input = h("input", { name: field.name, value: field.value || "", placeholder: field.placeholder || "", maxlength: 500 });
    }
    inputs[field.name] = input;
    rows.push(h("label", null, field.label, input));
  }
  const problem = h("p", { class: "dialog-problem", hidden: true });
  return new Promise((resolve) => {
    const finish = (values) => {
      dialog.close();
      dialog.replaceChildren();
      resolve(values);
    };
    const form = h(
      "form",
      {
        method: "dialog",
        onsubmit: (event) => {
          event.preventDefault();
          const values = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
          for (const field of fields) {
            if (field.validate) {
              const error = field.validate(values[field.name]);
              if (error) {
                problem.textContent = error;
                problem.hidden = false;
                return;
              }
            }
          }
          setOperator(values.by);
          finish(values);
        },
      },
      h("h2", null, title),
      h("p", { class: "dialog-message" }, message),
      rows,
      problem,
      h(
        "div",
        { class: "dialog-buttons" },
        h("button", { type: "button", class: "secondary", "data-action": "cancel", onclick: () => finish(null) }, "Cancel"),
        h("button", { type: "submit", class: danger ? "danger" : "primary", "data-action": "confirm" }, confirmLabel),
      ),
    );
    dialog.replaceChildren(form);
    dialog.addEventListener("cancel", () => resolve(null), { once: true });
    dialog.showModal();
    byInput.focus();
  });
}
