// The jobs list: every job with status, progress bar, ETA and latest loss, refreshed every few seconds.
import { api } from "./api.js";
import { banner, h, number, progressBar, seconds, statusBadge, TERMINAL, when } from "./ui.js";

const REFRESH_MS = 3000;

async function withProgress(rows) {
  // list has no progress: ask details for the unfinished jobs (few at a time).
  const live = rows.filter((row) => !TERMINAL.includes(row.status)).slice(0, 20);
  const details = await Promise.all(live.map((row) =>
    api("GET", "/finetune/request/details", { query: { request_id: row.request_id } })
      .then((body) => body.finetune).catch(() => null)));
  const byId = new Map(details.filter(Boolean).map((d) => [d.request_id, d]));
  return rows.map((row) => ({ ...row, live: byId.get(row.request_id) }));
}

function jobRow(job) {
  const progress = job.live?.progress;
  const loss = progress?.loss ?? job.model_information?.final_loss;
  return h("tr", { "data-job": job.request_id },
    h("td", { "data-label": "Name" }, h("a", { href: `#/job/${job.request_id}`, text: job.name })),
    h("td", { "data-label": "Base model", text: job.base_model }),
    h("td", { "data-label": "Status" }, statusBadge(job.live?.status || job.status)),
    h("td", { "data-label": "Progress" }, TERMINAL.includes(job.status) ? "" : progressBar(progress)),
    h("td", { "data-label": "ETA", text: progress ? seconds(progress.eta_seconds) : "–" }),
    h("td", { "data-label": "Loss", text: number(loss) }),
    h("td", { "data-label": "Created", text: when(job.created_ts) }));
}

export function jobsView(main) {
  const body = h("tbody");
  const updated = h("p", { class: "muted", "aria-live": "polite" });
  const empty = h("p", { class: "muted", hidden: true },
    "No jobs yet. ", h("a", { href: "#/new", text: "Start one" }), ".");
  main.append(
    h("div", { class: "heading" }, h("h1", { text: "Jobs" }), h("a", { class: "button", href: "#/new", text: "New job" })),
    h("table", { class: "jobs" },
      h("thead", {}, h("tr", {}, ...["Name", "Base model", "Status", "Progress", "ETA", "Loss", "Created"]
        .map((name) => h("th", { scope: "col", text: name })))),
      body),
    empty, updated);
  let timer = null;
  let stopped = false;
  async function refresh() {
    try {
      const rows = await withProgress(await api("GET", "/finetune/request/list", { query: { limit: 100 } }));
      if (stopped) return;
      body.replaceChildren(...rows.map(jobRow));
      empty.hidden = rows.length > 0;
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      banner("");
    } catch (err) {
      banner(err.message);
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
