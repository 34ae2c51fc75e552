// Small DOM helpers shared by the views: element building, errors beside controls, formatting.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function banner(message, kind = "error") {
  const node = document.getElementById("banner");
  node.textContent = message || "";
  node.className = `banner ${kind}`;
  node.hidden = !message;
}

// A labelled control: <div class=field><label for=id>label</label>control<p hint><p error></div>
export function field(label, control, hint) {
  const wrap = h("div", { class: "field" }, h("label", { for: control.id, text: label }), control);
  if (hint) {
    const note = h("p", { class: "hint", id: `${control.id}-hint`, text: hint });
    control.setAttribute("aria-describedby", note.id);
    wrap.append(note);
  }
  wrap.append(h("p", { class: "field-error", id: `${control.id}-error`, role: "alert", hidden: true }));
  return wrap;
}

export function showError(control, message) {
  const node = document.getElementById(`${control.id}-error`);
  control.setAttribute("aria-invalid", "true");
  node.textContent = message;
  node.hidden = false;
}

export function clearErrors(root) {
  for (const node of root.querySelectorAll(".field-error")) { node.hidden = true; node.textContent = ""; }
  for (const node of root.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

// The field an API error names: "advance_parameters.steps: ..." -> "steps", "trigger_word: ..." -> "trigger_word".
export function fieldOfError(message, known) {
  const lead = /^([A-Za-z_][\w.]*)\s*:/.exec(message);
  const names = lead ? [lead[1], lead[1].split(".").pop()] : [];
  for (const name of names) if (known.includes(name)) return name;
  return known.find((name) => new RegExp(`\\b${name}\\b`).test(message)) || null;
}

export function seconds(value) {
  if (value === null || value === undefined || !isFinite(value)) return "–";
  const s = Math.round(value);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString();
}

export function number(value, digits = 4) {
  return value === null || value === undefined ? "–" : Number(value).toPrecision(digits);
}

export const TERMINAL = ["AVAILABLE", "FAILED", "CANCELLED"];
export const STATUSES = ["REQUESTED", "DATA_PROCESSING", "TRAINING_INITIATED", "TRAINING_COMPLETED",
  "INFERENCE_QUEUED", "AVAILABLE", "FAILED", "CANCELLED"];

export function statusBadge(status) {
  return h("span", { class: `status status-${String(status).toLowerCase()}`, text: status });
}

export function progressBar(progress, id) {
  const step = progress?.step ?? 0;
  const total = progress?.total_steps ?? 0;
  const bar = h("progress", { max: total || 1, value: step, id, "aria-label": "Training progress" });
  return h("span", { class: "progress" }, bar, h("span", { class: "muted", text: total ? ` ${step}/${total}` : "" }));
}
