// A new job: drop a ZIP (uploaded straight to its pre-signed URL with a progress bar), fill the form,
// submit. Each base model's defaults show beside the advanced parameters; every API error goes beside
// the control it names.
import { api, putFile } from "./api.js";
import { clearErrors, field, fieldOfError, h, showError } from "./ui.js";

const ADVANCED = [
  ["steps", "Steps", "number"], ["learning_rate", "Learning rate", "number"], ["rank", "LoRA rank", "number"],
  ["alpha", "LoRA alpha", "number"], ["resolution", "Resolution (px)", "number"], ["batch_size", "Batch size", "number"],
  ["sample_every", "Sample every (steps)", "number"], ["sample_prompts", "Sample prompts (one per line)", "lines"],
  ["keep_intermediate", "Keep intermediate LoRAs", "bool"], ["auto_caption", "Auto caption", "bool"],
  ["face_crop", "Face crop", "bool"],
];

function advancedControl(name, kind) {
  const id = `param-${name}`;
  if (kind === "bool") {
    return h("select", { id }, h("option", { value: "", text: "default" }),
      h("option", { value: "true", text: "yes" }), h("option", { value: "false", text: "no" }));
  }
  if (kind === "lines") return h("textarea", { id, rows: 2 });
  return h("input", { id, type: "text", inputmode: "decimal", autocomplete: "off" });
}

function describe(value) {
  if (value === null || value === undefined) return "automatic";
  if (Array.isArray(value)) return value.join(" / ");
  return typeof value === "boolean" ? (value ? "yes" : "no") : String(value);
}

export function newJobView(main) {
  const file = h("input", { id: "dataset-file", type: "file", accept: ".zip,application/zip" });
  const bar = h("progress", { id: "upload-progress", max: 100, value: 0 });
  const uploadState = h("p", { id: "upload-state", class: "muted", "aria-live": "polite", text: "No file yet." });
  const drop = h("div", { id: "dropzone", class: "dropzone" },
    field("Dataset ZIP", file, "Drag and drop a .zip of images here, or pick one."),
    h("label", { for: "upload-progress", text: "Upload progress" }), bar, uploadState);
  const controls = {
    data_source_path: file,
    name: h("input", { id: "job-name", type: "text", required: true }),
    trigger_word: h("input", { id: "job-trigger", type: "text", required: true }),
    base_model: h("select", { id: "job-base-model" }, ...["FLUX", "FAST_FLUX", "QWEN"].map((m) => h("option", { value: m, text: m }))),
    instance_prompt: h("input", { id: "job-instance-prompt", type: "text", required: true }),
  };
  const advanced = Object.fromEntries(ADVANCED.map(([name, , kind]) => [name, advancedControl(name, kind)]));
  const hints = {};
  const advancedFields = ADVANCED.map(([name, label]) => {
    const wrap = field(label, advanced[name], " ");
    hints[name] = wrap.querySelector(".hint");
    return wrap;
  });
  const submit = h("button", { type: "submit", id: "submit-job", text: "Submit job" });
  const formError = h("p", { class: "field-error", id: "new-job-error", role: "alert", hidden: true });
  const form = h("form", { id: "new-job", class: "card" },
    h("h1", { text: "New job" }), drop,
    h("div", { class: "grid" },
      field("Name", controls.name), field("Trigger word", controls.trigger_word, "The word that calls up the LoRA"),
      field("Base model", controls.base_model), field("Instance prompt", controls.instance_prompt,
        "Caption for images without a .txt file, e.g. a photo of TOK")),
    h("details", { open: true }, h("summary", { text: "Advanced parameters" }),
      h("div", { class: "grid" }, ...advancedFields)),
    h("div", { class: "actions" }, submit), formError);
  main.append(form);

  let presets = null;
  let upload = null; // {s3_url, name}
  function showDefaults() {
    const defaults = presets?.base_models?.[controls.base_model.value] || {};
    for (const [name] of ADVANCED) {
      const bounds = presets?.parameters?.[name] || {};
      const range = bounds.minimum !== undefined && bounds.maximum !== undefined ? ` (${bounds.minimum}–${bounds.maximum})` : "";
      const about = bounds.description ? ` · ${bounds.description}` : "";
      hints[name].textContent = `Default for ${controls.base_model.value}: ${describe(defaults[name])}${range}${about}`;
      if (advanced[name].tagName === "INPUT") advanced[name].placeholder = describe(defaults[name]);
    }
  }
  controls.base_model.addEventListener("change", showDefaults);
  api("GET", "/finetune/presets").then((body) => { presets = body; showDefaults(); })
    .catch((err) => { formError.textContent = err.message; formError.hidden = false; });

  async function take(chosen) {
    if (!chosen) return;
    clearErrors(drop);
    upload = null;
    bar.value = 0;
    uploadState.textContent = `Uploading ${chosen.name}…`;
    try {
      const dot = chosen.name.lastIndexOf(".");
      const extension = dot > 0 ? chosen.name.slice(dot + 1) : "zip";
      const slot = await api("GET", "/finetune/request/upload/pre-signed-url", { query: { name: chosen.name, extension } });
      await putFile(slot.presigned_url, chosen, (share) => { bar.value = Math.round(100 * share); });
      upload = { s3_url: slot.s3_url, name: chosen.name };
      uploadState.textContent = `Uploaded ${chosen.name} (${(chosen.size / 1024).toFixed(1)} KiB).`;
      if (!controls.name.value) controls.name.value = chosen.name.replace(/\.[^.]*$/, "");
    } catch (err) {
      uploadState.textContent = "Upload failed.";
      showError(file, err.message);
    }
  }
  file.addEventListener("change", () => take(file.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    take(e.dataTransfer.files[0]);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    formError.hidden = true;
    if (!upload) { showError(file, "choose or drop a ZIP first; it uploads before the job is submitted"); return; }
    const params = {};
    for (const [name, , kind] of ADVANCED) {
      const raw = advanced[name].value.trim();
      if (raw === "") continue;
      if (kind === "bool") params[name] = raw === "true";
      else if (kind === "lines") params[name] = raw.split("\n").map((l) => l.trim()).filter(Boolean);
      else params[name] = isFinite(Number(raw)) ? Number(raw) : raw;
    }
    const body = {
      name: controls.name.value, data_source_path: upload.s3_url, trigger_word: controls.trigger_word.value,
      instance_prompt: controls.instance_prompt.value, base_model: controls.base_model.value,
      train_type: "LORA", advance_parameters: params,
    };
    submit.disabled = true;
    try {
      const answer = await api("POST", "/finetune/request/submit", { json: body });
      location.hash = `#/job/${answer.request_id}`;
    } catch (err) {
      const all = { ...controls, ...advanced };
      const name = fieldOfError(err.message, Object.keys(all));
      if (name) showError(all[name], err.message);
      else { formError.textContent = err.message; formError.hidden = false; }
    } finally {
      submit.disabled = false;
    }
  });
}
