// The task's DAG as SVG: steps in columns by depth (longest path from a root), edges as curves with arrows.

import { s } from "./dom.js";

const NODE_W = 190;
const NODE_H = 52;
const GAP_X = 70;
const GAP_Y = 22;
const PAD = 16;

function layers(steps, edges) {
  const parents = new Map(steps.map((step) => [step.name, []]));
  for (const edge of edges) if (parents.has(edge.to_step)) parents.get(edge.to_step).push(edge.from_step);
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (name) => {
    if (depth.has(name)) return depth.get(name);
    if (visiting.has(name)) return 0; // a cycle cannot be stored, but never loop on bad data
    visiting.add(name);
    const d = Math.max(-1, ...(parents.get(name) || []).filter((p) => parents.has(p)).map(depthOf)) + 1;
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  const columns = [];
  for (const step of steps) {
    const d = depthOf(step.name);
    (columns[d] ||= []).push(step);
  }
  return columns.map((column) => column || []);
}

/** The SVG element; clicking a node calls onSelect(step). */
export function dagSvg(steps, edges, onSelect) {
  const columns = layers(steps, edges);
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const width = PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * GAP_X;
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  const place = new Map();
  columns.forEach((column, ci) => {
    const offset = ((tallest - column.length) * (NODE_H + GAP_Y)) / 2;
    column.forEach((step, ri) => {
      place.set(step.name, { x: PAD + ci * (NODE_W + GAP_X), y: PAD + offset + ri * (NODE_H + GAP_Y) });
    });
  });
  const defs = s(
    "defs",
    null,
    s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "dag-arrow" })),
  );
  const edgeEls = edges
    .filter((e) => place.has(e.from_step) && place.has(e.to_step))
    .map((e) => {
      const a = place.get(e.from_step);
      const b = place.get(e.to_step);
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x - 2;
      const y2 = b.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      return s("path", {
        class: "dag-edge",
        d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`,
        "marker-end": "url(#arrow)",
        dataset: { from: e.from_step, to: e.to_step },
      });
    });
  const nodeEls = steps.map((step) => {
    const p = place.get(step.name);
    const state = String(step.current_state).replace(/[^a-z_]/g, "");
    const label = step.name.length > 24 ? `${step.name.slice(0, 23)}…` : step.name;
    return s(
      "g",
      {
        class: `dag-node state-${state}`,
        transform: `translate(${p.x} ${p.y})`,
        tabindex: 0,
        role: "button",
        dataset: { step: step.name, state: step.current_state, stepUuid: step.step_uuid },
        onclick: () => onSelect(step),
        onkeydown: (event) => event.key === "Enter" && onSelect(step),
      },
      s("title", null, `${step.name}: ${step.current_state} (attempts ${step.attempts}/${step.max_attempts})`),
      s("rect", { width: NODE_W, height: NODE_H, rx: 8, ry: 8 }),
      s("text", { x: 12, y: 21, class: "dag-name" }, label),
      s("text", { x: 12, y: 39, class: "dag-state" }, `${step.current_state.replaceAll("_", " ")} · ${step.attempts}/${step.max_attempts}`),
    );
  });
  return s(
    "svg",
    { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "workflow steps and their dependencies" },
    defs,
    s("g", { class: "dag-edges" }, edgeEls),
    s("g", { class: "dag-nodes" }, nodeEls),
  );
}
