// Generate with an AVAILABLE model: POST /v1/{slug}, the image shown when it comes back.
import { api } from "./api.js";
import { clearErrors, field, fieldOfError, h, showError } from "./ui.js";

export function generateForm(job) {
  const resolution = job.advance_parameters?.resolution || 1024;
  const controls = {
    prompt: h("textarea", { id: "gen-prompt", rows: 2, required: true }),
    width: h("input", { id: "gen-width", type: "number", step: 16, value: resolution }),
    height: h("input", { id: "gen-height", type: "number", step: 16, value: resolution }),
    num_inference_steps: h("input", { id: "gen-steps", type: "number", placeholder: "model default" }),
    seed: h("input", { id: "gen-seed", type: "number", min: 0, placeholder: "random" }),
    lora_strength: h("input", { id: "gen-strength", type: "number", step: 0.05, value: 1 }),
  };
  controls.prompt.value = `a photo of ${job.trigger_word}`;
  const button = h("button", { type: "submit", text: "Generate" });
  const output = h("figure", { class: "generated", hidden: true });
  const form = h("form", { id: "generate-form" },
    h("div", { class: "grid" }, field("Prompt", controls.prompt),
      field("Width (px)", controls.width), field("Height (px)", controls.height),
      field("Steps", controls.num_inference_steps), field("Seed", controls.seed),
      field("LoRA strength", controls.lora_strength, "0 = base model, 1 = as trained, up to 2")),
    h("div", { class: "actions" }, button), output);
  const formError = h("p", { class: "field-error", id: "generate-form-error", role: "alert", hidden: true });
  form.append(formError);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { prompt: controls.prompt.value };
    for (const name of ["width", "height", "num_inference_steps", "seed", "lora_strength"]) {
      const raw = controls[name].value.trim();
      if (raw !== "") body[name] = Number(raw);
    }
    button.disabled = true;
    button.textContent = "Generating…";
    try {
      const blob = await api("POST", `/v1/${job.slug}`, { json: body, as: "blob" });
      const img = h("img", { id: "generated-image", src: URL.createObjectURL(blob), alt: `Generated: ${body.prompt}` });
      output.replaceChildren(img, h("figcaption", { text: body.prompt }));
      output.hidden = false;
    } catch (err) {
      const name = fieldOfError(err.message, Object.keys(controls));
      if (name) showError(controls[name], err.message);
      else { formError.textContent = err.message; formError.hidden = false; }
    } finally {
      button.disabled = false;
      button.textContent = "Generate";
    }
  });
  return form;
}
