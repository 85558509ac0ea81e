// The console's file pane: what the container holds under /mnt/data, uploads into it (picked or
// dropped), and a download for each file.

import { listAll, uploadContainerFile } from "./api.js";
import { downloadContainerFile, fileName } from "./cell.js";
import { el } from "./render.js";
import { humanSize } from "./setup.js";
import { acceptFiles } from "./shell.js";

const FIGURES = "/mnt/data/figures/";

export class FilesPanel {
  // containerId() is the chosen container or null; ensureContainer() makes one when none is.
  constructor(root, containerId, ensureContainer) {
    this.containerId = containerId;
    this.ensureContainer = ensureContainer;
    this.list = root.querySelector("#console-file-list");
    this.error = root.querySelector("#files-error");
    this.uploads = root.querySelector("#console-uploads");
    this.loading = null;
    const picker = root.querySelector("#console-files");
    acceptFiles(picker, root.querySelector("#console-dropzone"), (files) => this.upload(files));
  }

  // One listing at a time; a refresh asked for meanwhile runs once the current one ends.
  refresh() {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.load().finally(() => {
      this.loading = null;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    });
    return this.loading;
  }

  async load() {
    const id = this.containerId();
    if (!id) return;
    try {
      const files = await listAll(`/containers/${encodeURIComponent(id)}/files`);
      files.sort((a, b) => a.path.localeCompare(b.path));
      const figures = files.filter((file) => file.path.startsWith(FIGURES));
      const rest = files.filter((file) => !file.path.startsWith(FIGURES));
      this.list.replaceChildren(...rest.map((file) => this.row(id, file)));
      if (figures.length) this.list.append(this.figureGroup(id, figures));
      if (!files.length) this.list.append(el("li", "note", "No files yet."));
      this.error.textContent = "";
    } catch (failure) {
      this.error.textContent = `Could not list the files: ${failure.message}`;
    }
  }

  // The charts cells showed are saved as files too; they sit folded under one line.
  figureGroup(containerId, figures) {
    const item = el("li", "figure-group");
    const fold = el("details");
    fold.open = this.figuresOpen || false;
    fold.addEventListener("toggle", () => {
      this.figuresOpen = fold.open;
    });
    const inner = el("ul", "file-list");
    inner.append(...figures.map((file) => this.row(containerId, file, file.path.slice(FIGURES.length))));
    fold.append(el("summary", "", `Charts from cells (${figures.length}) in figures/`), inner);
    item.append(fold);
    return item;
  }

  row(containerId, file, label = fileName(file.path)) {
    const name = fileName(file.path);
    const item = el("li", "file");
    item.dataset.fileId = file.id;
    item.dataset.path = file.path;
    const labelNode = el("span", "file-name", label);
    labelNode.title = file.path;
    const button = el("button", "quiet small", "Download");
    button.type = "button";
    button.setAttribute("aria-label", `Download ${name}`);
    button.addEventListener("click", () => {
      downloadContainerFile(containerId, file).catch((failure) => {
        this.error.textContent = `Could not download ${name}: ${failure.message}`;
      });
    });
    item.append(labelNode, el("span", "file-size", humanSize(file.bytes)), button);
    return item;
  }

  async upload(files) {
    if (!files.length) return;
    let id;
    try {
      id = await this.ensureContainer();
    } catch (failure) {
      this.error.textContent = failure.message;
      return;
    }
    await Promise.all(files.map((file) => this.uploadOne(id, file)));
    await this.refresh();
  }

  async uploadOne(id, file) {
    const item = el("li", "file uploading");
    const progress = el("progress");
    progress.max = 1;
    progress.value = 0;
    item.append(el("span", "file-name", file.name), el("span", "file-size", humanSize(file.size)), progress);
    this.uploads.append(item);
    try {
      await uploadContainerFile(id, file, (fraction) => {
        progress.value = fraction;
      });
      item.remove();
    } catch (failure) {
      item.classList.replace("uploading", "failed");
      progress.remove();
      const dismiss = el("button", "quiet small", "×");
      dismiss.type = "button";
      dismiss.setAttribute("aria-label", `Dismiss ${file.name}`);
      dismiss.addEventListener("click", () => item.remove());
      item.append(el("span", "error", failure.message), dismiss);
    }
  }
}
