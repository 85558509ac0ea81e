// The public /v1 API, called with the user's key: the playground has no other way in.

const KEY_STORAGE = "agentbox.apiKey";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function savedKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function saveKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${savedKey()}`, "OpenAI-Beta": "assistants=v2", ...extra };
}

async function failure(response) {
  let body = null;
  let message = `${response.status} ${response.statusText}`;
  try {
    body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, message, body);
}

export async function request(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/v1${path}`, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const del = (path) => request("DELETE", path);

// Every page of a list route (oldest first unless told otherwise).
export async function listAll(path, { order = "asc", max = 1000 } = {}) {
  const items = [];
  let after = null;
  const separator = path.includes("?") ? "&" : "?";
  while (items.length < max) {
    const cursor = after ? `&after=${encodeURIComponent(after)}` : "";
    const page = await get(`${path}${separator}limit=100&order=${order}${cursor}`);
    items.push(...page.data);
    if (!page.has_more || page.data.length === 0) break;
    after = page.data[page.data.length - 1].id;
  }
  return items;
}

// Uploads with XMLHttpRequest, the one browser API that reports upload progress.
export function uploadFile(file, onProgress) {
  return uploadTo("/files", file, { purpose: "assistants" }, onProgress);
}

// A file into a container's /mnt/data (multipart part "file").
export function uploadContainerFile(containerId, file, onProgress) {
  return uploadTo(`/containers/${encodeURIComponent(containerId)}/files`, file, {}, onProgress);
}

function uploadTo(path, file, fields, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1${path}`);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // handled below
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
      else reject(new ApiError(xhr.status, body?.error?.message || `Upload failed (${xhr.status})`, body));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "The upload was interrupted.", null)));
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// The bytes of a file, as a Blob (images become blob: URLs, downloads are saved from it).
export async function fileContent(fileId) {
  const response = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.blob();
}

// The bytes of a container's file (its content may change between calls, so nothing is cached).
export async function containerFileContent(containerId, fileId) {
  const path = `/containers/${encodeURIComponent(containerId)}/files/${encodeURIComponent(fileId)}/content`;
  const response = await fetch(`/v1${path}`, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.blob();
}

// POST …/runs with "stream": true and hand each server-sent event to onEvent(name, data).
export function streamRun(threadId, body, onEvent, signal) {
  return postEvents(`/threads/${encodeURIComponent(threadId)}/runs`, body, onEvent, signal);
}

// POST /containers/{id}/exec with "stream": true: exec.created, exec.output.delta, exec.image,
// exec.completed, each handed to onEvent(name, data) as it arrives.
export function streamExec(containerId, body, onEvent, signal) {
  return postEvents(`/containers/${encodeURIComponent(containerId)}/exec`, body, onEvent, signal);
}

async function postEvents(path, body, onEvent, signal) {
  const response = await fetch(`/v1${path}`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  await readEvents(response, onEvent);
}

// Server-sent events from a fetch body, each handed on as soon as its blank line arrives.
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseEvent(block);
      if (event) onEvent(event.name, event.data);
    }
  }
}

export function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  const text = data.join("\n");
  if (text === "[DONE]") return { name, data: null };
  try {
    return { name, data: JSON.parse(text) };
  } catch {
    return { name, data: text };
  }
}
