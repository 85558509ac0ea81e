// One console cell: its code, its output as it streams in (stdout and stderr in the order they
// were written), the error, the charts and files it made, its status and its duration. Built from
// the exec stream's events (exec.created, exec.output.delta, exec.image, exec.completed) or from a
// record the console stored earlier.

import { containerFileContent } from "./api.js";
import { el, highlightInto } from "./render.js";

const OUTPUT_KEEP = 16_000; // characters of output a stored record keeps
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

const WORDS = {
  running: "running",
  ok: "done",
  error: "error",
  timeout: "timed out",
  interrupted: "interrupted",
  killed: "killed",
  failed: "failed",
};

export function seconds(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function fileName(path) {
  return (path || "").replace(/^\/mnt\/data\//, "") || "file";
}

// Save a container file through a blob: URL; the key never appears in a link.
export async function downloadContainerFile(containerId, file) {
  const blob = await containerFileContent(containerId, file.id);
  const url = URL.createObjectURL(blob);
  const link = el("a");
  link.href = url;
  link.download = fileName(file.path).split("/").pop();
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export class Cell {
  constructor(container, { number, code, containerId }) {
    this.containerId = containerId;
    this.record = {
      number,
      code,
      status: "running",
      chunks: [], // [stream, text], merged while the same stream keeps writing
      error: null,
      images: [],
      files: [],
      duration_ms: null,
      note: "",
    };
    this.started = performance.now();
    this.node = el("article", "cell");
    const head = el("div", "cell-head");
    this.numberNode = el("span", "cell-number", `[${number}]`);
    this.statusNode = el("span", "cell-status");
    this.statusNode.setAttribute("role", "status");
    this.editButton = el("button", "quiet small cell-edit", "Edit");
    this.editButton.type = "button";
    this.editButton.title = "Copy this cell's code into the editor";
    head.append(this.numberNode, this.statusNode, this.editButton);
    const pre = el("pre", "cell-code");
    const codeNode = el("code", "language-python");
    pre.append(codeNode);
    highlightInto(codeNode, code);
    this.output = el("pre", "cell-output");
    this.output.hidden = true;
    this.extras = el("div", "cell-extras");
    this.node.append(head, pre, this.output, this.extras);
    container.append(this.node);
    this.showStatus();
    this.timer = setInterval(() => this.showStatus(), 250);
  }

  get done() {
    return this.record.status !== "running";
  }

  onEdit(handler) {
    this.editButton.addEventListener("click", () => handler(this.record.code));
  }

  showStatus() {
    const { status, duration_ms: duration, note } = this.record;
    this.node.dataset.status = status;
    const elapsed = duration ?? performance.now() - this.started;
    let words = `${WORDS[status] || status} · ${seconds(elapsed)}`;
    if (status === "running") words = `running… ${Math.floor(elapsed / 1000)} s`;
    if (note) words += ` · ${note}`;
    this.statusNode.textContent = words;
    this.statusNode.className = `cell-status ${status}`;
  }

  // Apply one event of the exec stream.
  handle(name, data) {
    if (name === "exec.created") {
      this.node.dataset.execId = data.exec?.id || "";
    } else if (name === "exec.output.delta") {
      this.write(data.stream, data.delta || "");
    } else if (name === "exec.image") {
      this.addImage(data.file);
    } else if (name === "exec.completed") {
      this.complete(data.exec);
    } else if (name === "error") {
      this.fail(data?.error?.message || "the stream reported an error");
    }
  }

  write(stream, text) {
    if (!text) return;
    text = text.replace(ANSI, "");
    const chunks = this.record.chunks;
    const last = chunks[chunks.length - 1];
    const lastNode = this.output.lastElementChild;
    if (last && last[0] === stream && lastNode) {
      last[1] += text;
      lastNode.append(text);
    } else {
      chunks.push([stream, text]);
      this.output.append(el("span", stream === "stderr" ? "stderr" : "stdout", text));
    }
    this.output.hidden = false;
  }

  addImage(file) {
    if (!file?.id || this.record.images.some((image) => image.id === file.id)) return;
    this.record.images.push({ id: file.id, path: file.path });
    const figure = el("figure", "image");
    const img = el("img");
    img.alt = `Figure ${this.record.images.length} from cell ${this.record.number}`;
    img.dataset.fileId = file.id;
    figure.append(img);
    this.placeExtra(figure, "figures");
    containerFileContent(this.containerId, file.id)
      .then((blob) => {
        img.src = URL.createObjectURL(blob);
      })
      .catch((failure) => figure.append(el("figcaption", "error", `Could not load the image: ${failure.message}`)));
  }

  complete(exec) {
    if (!exec) return;
    // Output missed live (none streamed) comes from the final object, stdout then stderr.
    if (!this.record.chunks.length) {
      this.write("stdout", exec.stdout || "");
      this.write("stderr", exec.stderr || "");
    }
    for (const image of exec.images || []) this.addImage(image);
    if (exec.error) this.showError(exec.error);
    const images = new Set(this.record.images.map((image) => image.id));
    this.record.files = (exec.files || []).filter((f) => !images.has(f.id)).map((f) => ({ id: f.id, path: f.path }));
    this.showFiles();
    const notes = [];
    if (exec.output_truncated) notes.push("output truncated");
    if (exec.restarted) notes.push(exec.state_lost_reason ? `fresh kernel: ${exec.state_lost_reason}` : "fresh kernel");
    this.finish(exec.status, exec.duration_ms, notes.join(" · "));
  }

  fail(message) {
    this.write("stderr", `\n${message}\n`);
    this.finish("failed", performance.now() - this.started, "");
  }

  finish(status, durationMs, note) {
    this.record.status = status || "ok";
    this.record.duration_ms = durationMs ?? performance.now() - this.started;
    this.record.note = note;
    clearInterval(this.timer);
    this.showStatus();
  }

  showError(error) {
    this.record.error = { name: error.name, value: error.value, traceback: error.traceback || "" };
    const box = el("div", "cell-error");
    box.append(el("strong", "", error.value ? `${error.name}: ${error.value}` : error.name));
    if (error.traceback) box.append(el("pre", "traceback", error.traceback.replace(ANSI, "")));
    this.placeExtra(box, "error");
  }

  showFiles() {
    if (!this.record.files.length) return;
    const list = el("p", "cell-files");
    list.append("Files: ");
    this.record.files.forEach((file, index) => {
      if (index) list.append(", ");
      const link = el("a", "file-link", fileName(file.path));
      link.href = "#";
      link.dataset.fileId = file.id;
      link.title = `Download ${fileName(file.path)}`;
      link.addEventListener("click", (event) => {
        event.preventDefault();
        downloadContainerFile(this.containerId, file).catch((failure) => {
          link.after(el("span", "error", ` (download failed: ${failure.message})`));
        });
      });
      list.append(link);
    });
    this.placeExtra(list, "files");
  }

  // Error first, then figures, then files, whatever order they arrive in.
  placeExtra(node, kind) {
    const order = ["error", "figures", "files"];
    node.dataset.kind = kind;
    const later = [...this.extras.children].find((c) => order.indexOf(c.dataset.kind) > order.indexOf(kind));
    this.extras.insertBefore(node, later || null);
  }

  // What the console keeps in localStorage, the output cut to a reasonable size.
  toRecord() {
    let left = OUTPUT_KEEP;
    const chunks = [];
    for (const [stream, text] of this.record.chunks) {
      if (left <= 0) break;
      chunks.push([stream, text.length > left ? `${text.slice(0, left)}\n[… cut in the stored history]` : text]);
      left -= text.length;
    }
    const error = this.record.error && { ...this.record.error, traceback: this.record.error.traceback.slice(0, 8000) };
    return { ...this.record, chunks, error };
  }

  static fromRecord(container, containerId, record) {
    const cell = new Cell(container, { number: record.number, code: record.code, containerId });
    for (const [stream, text] of record.chunks || []) cell.write(stream, text);
    if (record.error) cell.showError(record.error);
    for (const image of record.images || []) cell.addImage(image);
    cell.record.files = record.files || [];
    cell.showFiles();
    // A cell still running when the page went away has an unknown end.
    const status = record.status === "running" ? "failed" : record.status;
    cell.finish(status, record.duration_ms, record.status === "running" ? "the page left before it ended" : record.note);
    return cell;
  }
}
