// Building the page without ever parsing data as HTML: every string from the API becomes a text node or an
// attribute value, so a template name or an error message holding "<script>" shows as those characters.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

function assign(element, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key === "value" && "value" in element) {
      element.value = String(value);
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return element;
}

/** An HTML element: h("a", {href: "#/x", class: "link"}, "text", otherNode). */
export function h(tag, props, ...children) {
  return append(assign(document.createElement(tag), props), children);
}

/** An SVG element, the same way. */
export function s(tag, props, ...children) {
  return append(assign(document.createElementNS(SVG_NS, tag), props), children);
}

/** A local timestamp, to the second; the ISO value stays in the title. */
export function when(iso, precise = false) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const options = { hour12: false, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" };
  if (precise) options.fractionalSecondDigits = 3; // the audit trail's events are often milliseconds apart
  return date.toLocaleString(undefined, options);
}

export function timeEl(iso, precise = false) {
  return iso ? h("time", { datetime: iso, title: iso }, when(iso, precise)) : h("span", { class: "muted" }, "—");
}

/** Milliseconds between two timestamps, shown in the unit that reads best. */
export function duration(fromIso, toIso) {
  if (!fromIso || !toIso) return "";
  return ms(new Date(toIso) - new Date(fromIso));
}

export function ms(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(1)} s`;
  return `${Math.floor(value / 60_000)} min ${Math.round((value % 60_000) / 1000)} s`;
}

export function stateBadge(state) {
  const name = String(state || "unknown");
  return h("span", { class: `badge state-${name.replace(/[^a-z_]/g, "")}`, dataset: { state: name } }, name.replaceAll("_", " "));
}

export function shortId(uuid) {
  return String(uuid).slice(0, 8);
}

/** JSON shown as text (pretty, and cut when huge so a page stays usable). */
export function jsonText(value, limit = 4000) {
  const text = JSON.stringify(value, null, 2) ?? "";
  return text.length > limit ? `${text.slice(0, limit)}\n… (${text.length - limit} more characters)` : text;
}
