// One job: status, progress, timeline, dataset, loss chart, sample sets, downloads, access, cancel, generate.
import { api } from "./api.js";
import { lossChart } from "./chart.js";
import { generateForm } from "./generate.js";
import { banner, h, number, progressBar, seconds, showError, clearErrors, statusBadge, TERMINAL, when } from "./ui.js";

const REFRESH_MS = 2000;

function section(id, title) {
  const body = h("div", { class: "section-body" });
  const node = h("section", { id, class: "card", "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title`, text: title }), body);
  return { node, body };
}

function timeline(events) {
  return h("ol", { class: "timeline" }, ...events.map((e) => h("li", {},
    statusBadge(e.status), " ", h("time", { datetime: e.timestamp, text: when(e.timestamp) }),
    e.message ? h("p", { class: "muted", text: e.message }) : null)));
}

function datasetSummary(dataset) {
  if (!dataset) return h("p", { class: "muted", text: "The dataset report appears once the data is prepared." });
  const files = [...(dataset.dropped || []), ...(dataset.not_used || [])];
  const captions = Object.entries(dataset.caption_sources || {}).map(([source, n]) => `${n} ${source}`).join(", ");
  const buckets = Object.entries(dataset.buckets || {}).map(([size, n]) => `${n} at ${size}`).join(", ");
  return h("div", { id: "dataset-summary" },
    dataset.error ? h("p", { class: "banner error", text: dataset.error }) : null,
    h("dl", { class: "facts" },
      h("dt", { text: "Images used" }), h("dd", { text: dataset.images_used ?? 0 }),
      h("dt", { text: "Files dropped" }), h("dd", { text: dataset.counts?.dropped ?? 0 }),
      // Text files nobody asked for (a README, a stray caption) are not lost photos: counted apart.
      h("dt", { text: "Files not used" }), h("dd", { text: dataset.counts?.not_used ?? 0 }),
      captions ? h("dt", { text: "Captions" }) : null, captions ? h("dd", { text: captions }) : null,
      buckets ? h("dt", { text: "Buckets" }) : null, buckets ? h("dd", { text: buckets }) : null),
    files.length ? h("ul", { class: "dropped" }, ...files.map((d) =>
      h("li", {}, h("code", { text: d.file }), `: ${d.reason}`))) : null,
    ...(dataset.warnings || []).map((w) => h("p", { class: "muted", text: w })),
    dataset.report_url ? h("a", { href: dataset.report_url, text: "Full dataset report (JSON)" }) : null);
}

// Sample sets by step, side by side; image elements are kept across refreshes (their links are re-signed).
function sampleGrid(samples, cache) {
  if (!samples.length) return h("p", { class: "muted", text: "Sample sets appear at each sample step." });
  const prompts = [];
  for (const s of samples) prompts[s.index] = s.prompt;
  const steps = [...new Set(samples.map((s) => s.step))].sort((a, b) => a - b);
  const table = h("table", { class: "samples" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Step" }),
      ...prompts.map((p) => h("th", { scope: "col", text: p })))));
  const body = h("tbody");
  for (const step of steps) {
    const cells = prompts.map((prompt, index) => {
      const sample = samples.find((s) => s.step === step && s.index === index);
      if (!sample) return h("td");
      const id = `${step}/${index}`;
      if (!cache.has(id)) {
        cache.set(id, h("img", { src: sample.url, alt: `Sample at step ${step}: ${prompt}`, loading: "lazy",
          class: "sample", "data-step": step, "data-index": index }));
      }
      return h("td", {}, cache.get(id));
    });
    body.append(h("tr", {}, h("th", { scope: "row", text: `step ${step}` }), ...cells));
  }
  table.append(body);
  return h("div", { class: "scroll" }, table);
}

function downloads(job) {
  const files = job.files || [];
  const checkpoints = job.checkpoints || [];
  if (!files.length && !checkpoints.length) return h("p", { class: "muted", text: "Downloads appear once a LoRA is saved." });
  return h("div", {},
    h("ul", { class: "downloads" }, ...files.map((f) => h("li", {},
      h("a", { class: "button", href: f.url, download: "", "data-format": f.format,
        text: f.format === "comfyui" ? "Download ComfyUI LoRA" : "Download diffusers LoRA" }),
      h("span", { class: "muted", text: ` for ${f.for}` })))),
    checkpoints.length ? h("h3", { text: "Intermediate LoRAs" }) : null,
    h("ul", { class: "downloads" }, ...checkpoints.map((c) => h("li", {},
      h("a", { href: c.url, download: "", "data-step": c.step, text: `LoRA at step ${c.step}` })))));
}

function accessControls(job, onChange) {
  const toggle = h("input", { type: "checkbox", id: "public-switch", role: "switch", checked: job.public_model });
  toggle.addEventListener("change", () => onChange(toggle));
  const cancel = h("button", { type: "button", id: "cancel-job", class: "danger", text: "Cancel job",
    disabled: TERMINAL.includes(job.status) });
  const remove = h("button", { type: "button", id: "delete-job", class: "danger", text: "Delete job" });
  return { toggle, cancel, remove, node: h("div", { class: "controls" },
    h("div", { class: "field inline" }, toggle, h("label", { for: "public-switch", text: "Public model" }),
      h("p", { class: "field-error", id: "public-switch-error", role: "alert", hidden: true })),
    h("div", { class: "field inline" }, cancel,
      h("p", { class: "field-error", id: "cancel-job-error", role: "alert", hidden: true })),
    h("div", { class: "field inline" }, remove,
      h("p", { class: "hint", text: "removes the job, its files, samples and LoRAs" }),
      h("p", { class: "field-error", id: "delete-job-error", role: "alert", hidden: true }))) };
}

export function jobView(main, jobId) {
  const header = h("div", { class: "heading" });
  const status = h("div", { class: "card", id: "job-status" });
  const parts = Object.fromEntries([["timeline", "Status timeline"], ["dataset", "Dataset"], ["loss", "Loss"],
    ["samples", "Sample sets"], ["downloads", "Downloads"]].map(([id, title]) => [id, section(id, title)]));
  const generate = section("generate", "Generate");
  generate.node.hidden = true;
  main.append(h("p", {}, h("a", { href: "#/jobs", text: "← All jobs" })), header, status,
    ...Object.values(parts).map((p) => p.node), generate.node);

  const images = new Map();
  let controls = null, timer = null, stopped = false, shownGenerate = false;

  async function setPublic(toggle) {
    clearErrors(main);
    try {
      await api("PUT", "/finetune/request/access-update",
        { form: { request_id: jobId, segmind_public: toggle.checked ? "True" : "False" } });
    } catch (err) {
      toggle.checked = !toggle.checked;
      showError(toggle, err.message);
    }
  }

  async function cancelJob() {
    clearErrors(main);
    try {
      await api("POST", "/finetune/request/cancel", { json: { request_id: jobId } });
      refresh();
    } catch (err) {
      showError(controls.cancel, err.message);
    }
  }

  async function deleteJob() {
    clearErrors(main);
    try {
      await api("POST", "/finetune/request/delete", { json: { request_id: jobId } });
      stopped = true;
      location.hash = "#/jobs";
    } catch (err) {
      showError(controls.remove, err.message);
    }
  }

  function render(job, history) {
    header.replaceChildren(h("h1", { text: job.name }), statusBadge(job.status));
    if (!controls) {
      controls = accessControls(job, setPublic);
      controls.cancel.addEventListener("click", cancelJob);
      controls.remove.addEventListener("click", deleteJob);
    }
    controls.cancel.disabled = TERMINAL.includes(job.status);
    const progress = job.progress;
    const info = job.model_information || {};
    status.replaceChildren(
      h("dl", { class: "facts" },
        h("dt", { text: "Base model" }), h("dd", { text: job.base_model }),
        h("dt", { text: "Trigger word" }), h("dd", { text: job.trigger_word }),
        h("dt", {}, h("label", { for: "job-progress", text: "Progress" })), h("dd", {}, progressBar(progress, "job-progress")),
        h("dt", { text: "ETA" }), h("dd", { text: TERMINAL.includes(job.status) ? "–" : seconds(progress?.eta_seconds) }),
        h("dt", { text: "Latest loss" }), h("dd", { text: number(progress?.loss ?? info.final_loss) }),
        info.sample_share !== undefined ? h("dt", { text: "Sampling time" }) : null,
        info.sample_share !== undefined ? h("dd", { text: `${(100 * info.sample_share).toFixed(1)}% of training` }) : null,
        h("dt", { text: "Job id" }), h("dd", {}, h("code", { text: job.request_id }))),
      job.error_message ? h("p", { class: "banner error", role: "alert", text: job.error_message }) : "",
      controls.node);
    parts.timeline.body.replaceChildren(timeline(job.events || []));
    parts.dataset.body.replaceChildren(datasetSummary(job.dataset));
    parts.loss.body.replaceChildren(lossChart(history));
    parts.samples.body.replaceChildren(sampleGrid(job.samples || [], images));
    parts.downloads.body.replaceChildren(downloads(job));
    if (job.status === "AVAILABLE" && !shownGenerate) {
      shownGenerate = true;
      generate.node.hidden = false;
      generate.body.append(generateForm(job));
    }
  }

  async function refresh() {
    clearTimeout(timer);
    let job;
    try {
      const [details, metrics] = await Promise.all([
        api("GET", "/finetune/request/details", { query: { request_id: jobId } }),
        api("GET", "/finetune/request/metrics", { query: { request_id: jobId } })]);
      if (stopped) return;
      job = details.finetune;
      render(job, metrics.loss_history || []);
    } catch (err) {
      if (err.status === 404) {  // deleted, or not this key's: say so once instead of polling empty cards
        stopped = true;
        main.replaceChildren(h("p", { class: "banner error", role: "alert", id: "job-missing", text: err.message }),
          h("p", {}, h("a", { href: "#/jobs", text: "← All jobs" })));
        return;
      }
      banner(err.message);
    }
    if (!stopped && (!job || !TERMINAL.includes(job.status))) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
