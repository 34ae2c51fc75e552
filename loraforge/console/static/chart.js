// The loss chart: an inline SVG line of loss by step, with its range on the axes.
const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 220, PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function svg(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function lossChart(points) {
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": points.length ? `Loss over ${points.length} points, steps ${points[0].step} to ${points.at(-1).step}` : "No loss yet" });
  if (!points.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "No loss reported yet"));
    return root;
  }
  const steps = points.map((p) => p.step), losses = points.map((p) => p.loss);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  let [y0, y1] = [Math.min(...losses), Math.max(...losses)];
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const x = (s) => PAD.left + (x1 === x0 ? 0.5 : (s - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const y = (l) => PAD.top + (1 - (l - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  root.append(
    svg("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, class: "axis-line" }),
    svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom, class: "axis-line" }),
    svg("text", { x: PAD.left - 6, y: PAD.top + 10, "text-anchor": "end", class: "axis" }, y1.toPrecision(3)),
    svg("text", { x: PAD.left - 6, y: H - PAD.bottom, "text-anchor": "end", class: "axis" }, y0.toPrecision(3)),
    svg("text", { x: PAD.left, y: H - 8, class: "axis" }, `step ${x0}`),
    svg("text", { x: W - PAD.right, y: H - 8, "text-anchor": "end", class: "axis" }, `step ${x1}`),
    svg("polyline", { points: points.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(" "),
      class: "loss-line" }));
  return root;
}
