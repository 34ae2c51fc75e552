// The fine-tune webhook: add or update it (URL and events), send a test, read the dispatch log.
import { api } from "./api.js";
import { banner, clearErrors, field, fieldOfError, h, showError, STATUSES, when } from "./ui.js";

// As the server's default (webhooks/registry.py): the seeds' three, and the two ends a client must hear of.
const DEFAULT_EVENTS = ["TRAINING_COMPLETED", "INFERENCE_QUEUED", "AVAILABLE", "FAILED", "CANCELLED"];

function logTable(logs) {
  if (!logs.length) return h("p", { class: "muted", text: "Nothing sent yet." });
  return h("div", { class: "scroll" }, h("table", { class: "log" },
    h("thead", {}, h("tr", {}, ...["When", "Event", "Job", "Attempt", "HTTP status", "Error", "ms"]
      .map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, ...logs.map((l) => h("tr", {},
      h("td", { "data-label": "When", text: when(l.timestamp) }), h("td", { "data-label": "Event", text: l.event_type }),
      h("td", { "data-label": "Job", text: l.request_id || "test" }), h("td", { "data-label": "Attempt", text: l.attempt }),
      h("td", { "data-label": "HTTP status", text: l.status_code ?? "–" }), h("td", { "data-label": "Error", text: [l.error, l.response_body].filter(Boolean).join(": ") }),
      h("td", { "data-label": "ms", text: l.duration_ms }))))));
}

export function webhooksView(main) {
  const url = h("input", { id: "webhook-url", type: "url", required: true, placeholder: "https://example.org/hooks/loraforge" });
  const boxes = STATUSES.map((status) => h("input", { type: "checkbox", id: `event-${status}`, value: status }));
  const events = h("fieldset", { id: "webhook-events", class: "events" }, h("legend", { text: "Events" }),
    ...boxes.map((box) => h("span", { class: "check" }, box, h("label", { for: box.id, text: box.value }))),
    h("p", { class: "field-error", id: "webhook-events-error", role: "alert", hidden: true }));
  const save = h("button", { type: "submit", id: "webhook-save", text: "Add webhook" });
  const test = h("button", { type: "button", id: "webhook-test", text: "Send test", disabled: true });
  const outcome = h("p", { id: "webhook-outcome", class: "muted", "aria-live": "polite" });
  const secret = h("p", { class: "muted" });
  const form = h("form", { id: "webhook-form", class: "card" }, h("h1", { text: "Webhook" }), secret,
    field("Webhook URL", url, "Receives a signed POST (Standard Webhooks) on each chosen status"), events,
    h("div", { class: "actions" }, save, test), outcome,
    h("p", { class: "field-error", id: "webhook-form-error", role: "alert", hidden: true }));
  const log = h("section", { class: "card", id: "dispatch-log", "aria-labelledby": "dispatch-log-title" },
    h("h2", { id: "dispatch-log-title", text: "Dispatch log" }), h("div"));
  main.append(form, log);
  let active = null;

  function formError(err, controls) {
    const name = fieldOfError(err.message, Object.keys(controls));
    const target = name ? controls[name] : form;
    if (name) showError(target, err.message);
    else {
      const node = document.getElementById("webhook-form-error");
      node.textContent = err.message;
      node.hidden = false;
    }
  }

  async function load() {
    try {
      const { webhooks } = await api("GET", "/webhook/get");
      active = webhooks.find((w) => w.active) || null;
      url.value = active ? active.webhook_url : url.value;
      const chosen = active ? active.event.types : DEFAULT_EVENTS;
      for (const box of boxes) box.checked = chosen.includes(box.value);
      save.textContent = active ? "Update webhook" : "Add webhook";
      test.disabled = !active;
      // In <code>, which breaks anywhere: the 51-character secret would widen the page on a phone.
      secret.replaceChildren(...(active ? ["Signing secret: ", h("code", { text: active.secret })] : ["No webhook yet."]));
      log.lastChild.replaceChildren(active
        ? logTable((await api("GET", "/webhook/dispatch-logs", { query: { webhook_id: active.webhook_id } })).logs)
        : h("p", { class: "muted", text: "Add a webhook to see its deliveries." }));
    } catch (err) {
      banner(err.message);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { webhook_url: url.value.trim(), event: { types: boxes.filter((b) => b.checked).map((b) => b.value) } };
    try {
      if (active) await api("POST", "/webhook/update", { json: { webhook_id: active.webhook_id, ...body } });
      else await api("POST", "/webhook/add", { json: body });
      outcome.textContent = "Saved.";
      await load();
    } catch (err) {
      formError(err, { webhook_url: url, event: events, types: events });
    }
  });
  test.addEventListener("click", async () => {
    clearErrors(form);
    outcome.textContent = "Sending…";
    try {
      const answer = await api("POST", "/webhook/test", { json: { webhook_id: active.webhook_id } });
      outcome.textContent = `Test ${answer.message_id}: ${answer.outcome}`;
      await load();
    } catch (err) {
      outcome.textContent = "";
      formError(err, {});
    }
  });
  load();
}
