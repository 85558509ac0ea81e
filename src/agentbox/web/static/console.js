// The console: Python in a container with no model involved. Pick or create a container, upload
// files into its /mnt/data, run cells (Shift+Enter) whose output streams in, interrupt a long one,
// download what the code wrote. The cells of each container are remembered in this browser.

import { ApiError, get, listAll, post, streamExec } from "./api.js";
import { Cell } from "./cell.js";
import { FilesPanel } from "./consolefiles.js";
import { el } from "./render.js";
import { setCrumbs, template } from "./shell.js";

const HISTORY_KEEP = 40;
const EMPTY = "Run Python in a sandbox — no model needed. Type code below and press Shift+Enter. "
  + "Files you upload are in /mnt/data; charts you draw with matplotlib appear under the cell.";

function historyStore(containerId) {
  const key = `agentbox.console.${containerId}`;
  return {
    load() {
      try {
        const cells = JSON.parse(localStorage.getItem(key) || "[]");
        return Array.isArray(cells) ? cells.filter((c) => typeof c?.code === "string") : [];
      } catch {
        return [];
      }
    },
    save(records) {
      for (let keep = records.length; keep > 0; keep = Math.floor(keep / 2)) {
        try {
          localStorage.setItem(key, JSON.stringify(records.slice(-keep)));
          return;
        } catch {
          // Over the browser's quota: keep fewer cells.
        }
      }
    },
    clear() {
      localStorage.removeItem(key);
    },
  };
}

// The name, and the id's end where two containers share a name.
function containerLabel(container, shared) {
  const name = container.name || "Unnamed";
  const id = shared.has(name) ? ` · …${container.id.slice(-6)}` : "";
  return `${name}${id}${container.status === "expired" ? " (expired)" : ""}`;
}

export async function openConsole(main, containerId) {
  const view = template("tpl-console");
  main.replaceChildren(view);
  document.title = "Console · agentbox playground";
  const pane = new ConsoleView(view, containerId);
  await pane.start();
  return () => pane.leave();
}

class ConsoleView {
  constructor(root, containerId) {
    this.root = root;
    this.containerId = containerId || null;
    this.container = null;
    this.cells = [];
    this.running = new Set();
    this.aborter = new AbortController();
    this.q = (selector) => root.querySelector(selector);
    this.pick = this.q("#container-pick");
    this.meta = this.q("#container-meta");
    this.list = this.q("#cells");
    this.code = this.q("#code");
    this.runButton = this.q("#run");
    this.interruptButton = this.q("#interrupt");
    this.error = this.q("#console-error");
    this.files = new FilesPanel(root, () => this.containerId, () => this.ensureContainer());
    this.wire();
  }

  async start() {
    this.crumbs();
    if (this.containerId) {
      try {
        this.container = await get(`/containers/${encodeURIComponent(this.containerId)}`);
      } catch (failure) {
        if (!(failure instanceof ApiError && failure.status === 404)) throw failure;
        this.error.textContent = `There is no container ${this.containerId} (it was deleted); choose or create another.`;
        this.containerId = null;
      }
    }
    this.crumbs();
    await this.showContainers();
    this.showMeta();
    this.store = this.containerId ? historyStore(this.containerId) : null;
    for (const record of this.store?.load() || []) this.addCell(Cell.fromRecord(this.list, this.containerId, record));
    this.showEmpty();
    this.scrollDown(true);
    if (this.containerId) this.files.refresh();
    // On a phone the container pane starts folded (its summary names the container), so the cells
    // and the editor are in view; Run makes a container when none is chosen.
    if (window.matchMedia("(max-width: 760px)").matches) this.q(".side-fold").open = false;
    this.code.focus({ preventScroll: true });
  }

  leave() {
    this.left = true;
    this.aborter.abort();
    for (const cell of this.cells) clearInterval(cell.timer);
    document.title = "agentbox playground";
  }

  // The tab already says "Console": the crumb names the container.
  crumbs() {
    const id = this.containerId;
    setCrumbs(...(id ? [[this.container?.name || id, null]] : []));
  }

  wire() {
    this.pick.addEventListener("change", () => {
      if (this.pick.value) location.hash = `#/console/${encodeURIComponent(this.pick.value)}`;
    });
    this.q("#new-container").addEventListener("click", async () => {
      try {
        const container = await this.createContainer();
        location.hash = `#/console/${encodeURIComponent(container.id)}`;
      } catch (failure) {
        this.error.textContent = failure.message;
      }
    });
    this.q("#editor").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    this.code.addEventListener("keydown", (event) => this.key(event));
    this.interruptButton.addEventListener("click", () => this.interrupt());
    this.q("#clear-cells").addEventListener("click", () => {
      for (const cell of this.cells) if (cell.done) cell.node.remove();
      this.cells = this.cells.filter((cell) => !cell.done);
      this.store?.clear();
      this.showEmpty();
    });
  }

  key(event) {
    const escaped = this.escaped;
    this.escaped = event.key === "Escape";
    if (event.key === "Enter" && (event.shiftKey || event.ctrlKey || event.metaKey) && !event.isComposing) {
      event.preventDefault();
      this.run();
    } else if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey) {
      // Indentation matters in Python: Tab indents instead of leaving the editor (Esc, then Tab, leaves).
      if (escaped) return;
      event.preventDefault();
      this.code.setRangeText("    ", this.code.selectionStart, this.code.selectionEnd, "end");
    }
  }

  async showContainers() {
    const containers = await listAll("/containers", { order: "desc", max: 300 });
    const placeholder = el("option", "", containers.length ? "Choose a container…" : "No containers yet");
    placeholder.value = "";
    this.pick.replaceChildren(placeholder);
    const seen = new Set();
    const shared = new Set();
    for (const { name } of containers) (seen.has(name || "Unnamed") ? shared : seen).add(name || "Unnamed");
    for (const container of containers) {
      const option = el("option", "", containerLabel(container, shared));
      option.value = container.id;
      option.disabled = container.status === "expired" && container.id !== this.containerId;
      this.pick.append(option);
    }
    this.pick.value = this.containerId || "";
  }

  showMeta() {
    const c = this.container;
    const created = c && new Date(c.created_at * 1000).toLocaleString();
    this.meta.textContent = c
      ? `${c.id} · ${c.status} · deleted ${c.expires_after.minutes} min after its last use · created ${created}`
      : "Run creates a container if none is chosen.";
    this.q("#side-summary").textContent = c ? c.name || c.id : "none chosen";
  }

  createContainer() {
    const when = new Date().toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    return post("/containers", { name: `Console ${when}` });
  }

  // The chosen container, or a new one adopted in place (the address changes, the page stays).
  ensureContainer() {
    if (this.containerId) return Promise.resolve(this.containerId);
    // A run and an upload started together share the one new container.
    this.adopting ??= this.adoptNew().finally(() => {
      this.adopting = null;
    });
    return this.adopting;
  }

  async adoptNew() {
    this.container = await this.createContainer();
    this.containerId = this.container.id;
    history.replaceState(null, "", `#/console/${encodeURIComponent(this.containerId)}`);
    this.store = historyStore(this.containerId);
    this.error.textContent = "";
    this.crumbs();
    this.showMeta();
    await this.showContainers();
    return this.containerId;
  }

  addCell(cell) {
    this.cells.push(cell);
    cell.onEdit((code) => {
      this.code.value = code;
      this.code.focus();
    });
  }

  showEmpty() {
    const empty = this.list.querySelector(".empty");
    if (this.cells.length) empty?.remove();
    else if (!empty) this.list.append(el("p", "empty", EMPTY));
  }

  scrollDown(force = false) {
    const box = this.list;
    if (force || box.scrollHeight - box.scrollTop - box.clientHeight < 160) box.scrollTop = box.scrollHeight;
  }

  async run() {
    const code = this.code.value;
    if (!code.trim()) return;
    this.error.textContent = "";
    let containerId;
    try {
      containerId = await this.ensureContainer();
    } catch (failure) {
      this.error.textContent = failure.message;
      return;
    }
    const number = Math.max(0, ...this.cells.map((c) => c.record.number)) + 1;
    const cell = new Cell(this.list, { number, code, containerId });
    this.addCell(cell);
    this.showEmpty();
    this.code.value = "";
    this.scrollDown(true);
    this.setRunning(cell, true);
    try {
      await streamExec(containerId, { code }, (name, data) => {
        cell.handle(name, data);
        this.scrollDown();
      }, this.aborter.signal);
      if (!cell.done) cell.fail("The stream ended before the cell finished.");
    } catch (failure) {
      if (this.left) return;
      cell.fail(failure.message);
    } finally {
      if (!this.left) {
        this.setRunning(cell, false);
        this.store?.save(this.cells.filter((c) => c.done).slice(-HISTORY_KEEP).map((c) => c.toRecord()));
        this.scrollDown();
        this.files.refresh();
      }
    }
  }

  setRunning(cell, running) {
    if (running) this.running.add(cell);
    else this.running.delete(cell);
    this.interruptButton.hidden = this.running.size === 0;
    if (this.running.size === 0) {
      this.interruptButton.disabled = false;
      this.interruptButton.textContent = "Interrupt";
    }
    this.root.classList.toggle("is-running", this.running.size > 0);
  }

  async interrupt() {
    if (!this.containerId) return;
    this.interruptButton.disabled = true;
    this.interruptButton.textContent = "Interrupting…";
    try {
      await post(`/containers/${encodeURIComponent(this.containerId)}/interrupt`);
    } catch (failure) {
      this.error.textContent = failure.message;
    } finally {
      // A queued cell may start next: let the button work again shortly.
      setTimeout(() => {
        this.interruptButton.disabled = false;
        this.interruptButton.textContent = "Interrupt";
      }, 1000);
    }
  }
}
