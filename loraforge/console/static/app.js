// The console's router: one view per hash (#/jobs, #/job/ID, #/new, #/webhooks), sign-in first.
import { api, session } from "./api.js";
import { banner, clearErrors, field, h, showError } from "./ui.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { newJobView } from "./newjob.js";
import { webhooksView } from "./webhooks.js";

let cleanup = null;

function signInView(main) {
  const key = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h("form", { id: "sign-in", class: "card narrow" },
    h("h1", { text: "Sign in" }),
    field("API key", key, "The key from `loraforge keys create`; it stays in this browser tab only."),
    h("button", { type: "submit", text: "Sign in" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const candidate = key.value.trim();
    try {
      await api("GET", "/finetune/request/list", { query: { limit: 1 }, key: candidate });
      session.set(candidate);
      location.hash = "#/jobs";
      route();
    } catch (err) {
      showError(key, err.message);
    }
  });
  main.append(form);
  key.focus();
}

const VIEWS = [
  [/^#\/job\/([\w-]+)$/, jobView],
  [/^#\/new$/, newJobView],
  [/^#\/webhooks$/, webhooksView],
  [/^#\/jobs$/, jobsView],
];

function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  banner("");
  const main = document.getElementById("main");
  main.replaceChildren();
  const signedIn = Boolean(session.key);
  document.getElementById("nav").hidden = !signedIn;
  if (!signedIn) { signInView(main); return; }
  const hash = location.hash || "#/jobs";
  for (const [pattern, view] of VIEWS) {
    const match = pattern.exec(hash);
    if (match) { cleanup = view(main, ...match.slice(1)) || null; return; }
  }
  location.hash = "#/jobs";
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-out").addEventListener("click", () => {
    session.clear();
    location.hash = "";
    route();
  });
  window.addEventListener("hashchange", route);
  route();
});
