// The one way the console talks to the server: the public HTTP API with the key in x-api-key.
// A failed request throws ApiError carrying the API's own `error` text (or the HTTP status).

const KEY = "loraforge.api_key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
    if (body && typeof body.detail === "string") return body.detail;
  } catch (_) { /* not JSON: fall through */ }
  return `HTTP ${response.status} ${response.statusText}`.trim();
}

// api("GET", "/finetune/request/list", {query: {limit: 10}}); json: a JSON body; form: a form body.
export async function api(method, path, { query, json, form, key, as } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  const headers = { "x-api-key": key ?? session.key ?? "" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch (err) {
    throw new ApiError(0, `the server could not be reached (${err.message})`);
  }
  if (!response.ok) throw new ApiError(response.status, await errorText(response));
  if (as === "blob") return response.blob();
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

// PUT a file to a pre-signed URL with upload progress (fetch cannot report upload progress).
export function putFile(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", "application/zip");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) { onProgress(1); resolve(); return; }
      let message = `upload failed: HTTP ${xhr.status}`;
      try { message = JSON.parse(xhr.responseText).error || message; } catch (_) { /* S3 answers XML */ }
      reject(new ApiError(xhr.status, message));
    };
    xhr.onerror = () => reject(new ApiError(0, "the upload could not reach the storage server"));
    xhr.send(file);
  });
}
