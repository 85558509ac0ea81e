// The Setup pane: the agent's name, model, instructions, temperature, actions and tool files.
// Every change is saved at once with POST /v1/assistants/{id}, one save after another.

import { get, post, uploadFile } from "./api.js";
import { el } from "./render.js";
import { acceptFiles } from "./shell.js";

export function humanSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export class SetupPane {
  constructor(root, agent, onRenamed) {
    this.root = root;
    this.agent = agent;
    this.onRenamed = onRenamed;
    this.saving = Promise.resolve();
    this.q = (selector) => root.querySelector(selector);
    this.state = this.q("#save-state");
    this.error = this.q("#setup-error");
    this.fields = {
      name: this.q("#agent-name"),
      model: this.q("#agent-model"),
      instructions: this.q("#agent-instructions"),
      temperature: this.q("#agent-temperature"),
    };
    this.fileList = this.q("#tool-file-list");
    this.fill();
    this.wire();
  }

  fill() {
    const { agent, fields } = this;
    fields.name.value = agent.name || "";
    fields.model.value = agent.model || "";
    fields.instructions.value = agent.instructions || "";
    fields.temperature.value = agent.temperature ?? 1;
    this.q("#temperature-value").textContent = Number(fields.temperature.value).toFixed(2);
    this.q("#agent-id").textContent = `${agent.id} · created ${new Date(agent.created_at * 1000).toLocaleString()}`;
    this.showTools();
  }

  get hasCodeInterpreter() {
    return this.agent.tools.some((tool) => tool.type === "code_interpreter");
  }

  get toolFileIds() {
    return this.agent.tool_resources?.code_interpreter?.file_ids || [];
  }

  wire() {
    const { fields } = this;
    for (const name of ["name", "model", "instructions", "temperature"]) {
      fields[name].addEventListener("change", () => this.saveFields());
    }
    fields.temperature.addEventListener("input", () => {
      this.q("#temperature-value").textContent = Number(fields.temperature.value).toFixed(2);
    });

    const addButton = this.q("#add-action");
    const menu = this.q("#action-menu");
    addButton.addEventListener("click", () => {
      menu.hidden = !menu.hidden;
      addButton.setAttribute("aria-expanded", String(!menu.hidden));
    });
    menu.querySelector('[data-tool="code_interpreter"]').addEventListener("click", () => {
      menu.hidden = true;
      addButton.setAttribute("aria-expanded", "false");
      if (!this.hasCodeInterpreter) this.save({ tools: [...this.agent.tools, { type: "code_interpreter" }] });
    });
    this.q("#remove-code-interpreter").addEventListener("click", () => {
      this.save({ tools: this.agent.tools.filter((tool) => tool.type !== "code_interpreter") });
    });

    acceptFiles(this.q("#tool-files"), this.q("#dropzone"), (files) => this.upload(files));
  }

  saveFields() {
    const { fields } = this;
    if (!fields.model.value.trim()) {
      this.error.textContent = "The model can't be empty.";
      return this.saving;
    }
    return this.save({
      name: fields.name.value.trim(),
      model: fields.model.value.trim(),
      instructions: fields.instructions.value,
      temperature: Number(fields.temperature.value),
    });
  }

  // Saves run one after another, so concurrent edits and uploads never overwrite each other.
  save(changes) {
    const build = typeof changes === "function" ? changes : () => changes;
    this.state.textContent = "Saving…";
    this.saving = this.saving.then(async () => {
      try {
        const before = this.agent.name;
        this.agent = await post(`/assistants/${this.agent.id}`, build());
        this.state.textContent = "Saved";
        this.error.textContent = "";
        this.showTools();
        if (this.agent.name !== before) this.onRenamed(this.agent);
      } catch (failure) {
        this.state.textContent = "Not saved";
        this.error.textContent = failure.message;
      }
    });
    return this.saving;
  }

  flush() {
    return this.saving;
  }

  showTools() {
    const has = this.hasCodeInterpreter;
    this.q("#code-interpreter").hidden = !has;
    this.q("#no-actions").hidden = has;
    this.q('[data-tool="code_interpreter"]').disabled = has;
    this.showFiles();
  }

  async showFiles() {
    const ids = this.toolFileIds;
    const known = new Map([...this.fileList.children].map((item) => [item.dataset.fileId, item]));
    for (const [id, item] of known) {
      if (!ids.includes(id) && !item.classList.contains("uploading")) item.remove();
    }
    for (const id of ids) {
      if (known.has(id) && !known.get(id).classList.contains("uploading")) continue;
      const item = known.get(id) || el("li", "file");
      item.classList.remove("uploading");
      item.dataset.fileId = id;
      item.replaceChildren(el("span", "file-name", id));
      if (!item.isConnected) this.fileList.append(item);
      try {
        const file = await get(`/files/${encodeURIComponent(id)}`);
        this.fileRow(item, file);
      } catch (failure) {
        this.fileRow(item, { id, filename: `${id} (${failure.message})`, bytes: 0 });
      }
    }
  }

  fileRow(item, file) {
    const remove = el("button", "quiet small", "Remove");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${file.filename}`);
    remove.addEventListener("click", () => this.removeFile(file.id));
    item.replaceChildren(
      el("span", "file-name", file.filename),
      el("span", "file-size", humanSize(file.bytes)),
      remove,
    );
  }

  // Detaches the file from this agent only: other agents, threads and messages may still use it,
  // so it stays on the server (deleting it is the Files API's job, as on OpenAI).
  removeFile(id) {
    return this.save(() => ({
      tool_resources: { code_interpreter: { file_ids: this.toolFileIds.filter((f) => f !== id) } },
    }));
  }

  upload(files) {
    for (const file of files) {
      const item = el("li", "file uploading");
      const progress = el("progress");
      progress.max = 1;
      progress.value = 0;
      item.append(el("span", "file-name", file.name), el("span", "file-size", humanSize(file.size)), progress);
      this.fileList.append(item);
      uploadFile(file, (fraction) => {
        progress.value = fraction;
      })
        .then((uploaded) => {
          item.dataset.fileId = uploaded.id;
          return this.save(() => ({
            tool_resources: { code_interpreter: { file_ids: [...this.toolFileIds, uploaded.id] } },
          }));
        })
        .catch((failure) => {
          item.classList.remove("uploading");
          item.classList.add("failed");
          progress.remove();
          item.append(el("span", "error", failure.message));
        });
    }
  }
}
