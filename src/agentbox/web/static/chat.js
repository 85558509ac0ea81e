// The chat pane: this agent's threads, the conversation, and the composer that streams a run.
//
// The API has no "list threads" route (OpenAI's has none either), so the playground remembers the
// threads it made for an agent in this browser's localStorage, and tags each thread's metadata
// with the agent's id and a title so they stay recognisable through the API too.

import { ApiError, del, get, listAll, post, streamRun, uploadFile } from "./api.js";
import { el } from "./render.js";
import { RunView } from "./runview.js";
import { humanSize } from "./setup.js";

const ACTIVE = new Set(["queued", "in_progress", "cancelling"]);

function threadStore(agentId) {
  const key = `agentbox.threads.${agentId}`;
  return {
    load() {
      try {
        const threads = JSON.parse(localStorage.getItem(key) || "[]");
        return Array.isArray(threads) ? threads.filter((t) => typeof t?.id === "string") : [];
      } catch {
        return [];
      }
    },
    save(threads) {
      localStorage.setItem(key, JSON.stringify(threads));
    },
  };
}

export class ChatPane {
  constructor(root, agentId, setup) {
    this.root = root;
    this.agentId = agentId;
    this.setup = setup;
    this.store = threadStore(agentId);
    this.threads = this.store.load();
    this.current = null;
    this.attachments = [];
    this.running = null; // { view, threadId }
    this.q = (selector) => root.querySelector(selector);
    this.list = this.q("#thread-list");
    this.messages = this.q("#messages");
    this.prompt = this.q("#prompt");
    this.error = this.q("#chat-error");
    this.sendButton = this.q("#send");
    this.stopButton = this.q("#stop");
    this.wire();
    this.showThreads();
    if (this.threads.length) this.open(this.threads[0].id);
    else this.showEmpty();
  }

  wire() {
    this.q("#new-thread").addEventListener("click", () => this.newThread().catch((e) => this.fail(e)));
    this.q("#composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send().catch((e) => this.fail(e));
    });
    this.prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.q("#composer").requestSubmit();
      }
    });
    const picker = this.q("#attach-input");
    picker.addEventListener("change", () => {
      for (const file of picker.files) this.attach(file);
      picker.value = "";
    });
    this.stopButton.addEventListener("click", () => this.stop());
  }

  fail(failure) {
    this.error.textContent = failure.message;
  }

  // Thread list ----------------------------------------------------------------------------------

  showThreads() {
    this.list.replaceChildren();
    for (const thread of this.threads) {
      const item = el("li", "thread");
      item.dataset.threadId = thread.id;
      item.classList.toggle("current", thread.id === this.current);
      const open = el("button", "thread-open", thread.title || "New thread");
      open.type = "button";
      open.title = thread.id;
      open.addEventListener("click", () => this.open(thread.id));
      const remove = el("button", "thread-delete quiet small", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", `Delete thread ${thread.title || thread.id}`);
      remove.addEventListener("click", () => this.deleteThread(thread.id));
      item.append(open, remove);
      this.list.append(item);
    }
  }

  remember(thread) {
    this.threads = [thread, ...this.threads.filter((t) => t.id !== thread.id)];
    this.store.save(this.threads);
    this.showThreads();
  }

  forget(threadId) {
    this.threads = this.threads.filter((t) => t.id !== threadId);
    this.store.save(this.threads);
    this.showThreads();
  }

  async newThread() {
    if (this.running) return;
    const thread = await post("/threads", { metadata: { playground_agent: this.agentId } });
    this.remember({ id: thread.id, title: "", created_at: thread.created_at });
    this.current = thread.id;
    this.showThreads();
    this.showEmpty();
    this.prompt.focus();
    return thread.id;
  }

  async deleteThread(threadId) {
    if (this.running?.threadId === threadId) {
      this.error.textContent = "Stop the run before deleting its thread.";
      return;
    }
    try {
      await del(`/threads/${encodeURIComponent(threadId)}`);
    } catch (failure) {
      if (!(failure instanceof ApiError && failure.status === 404)) {
        this.fail(failure);
        return;
      }
    }
    this.forget(threadId);
    if (this.current === threadId) {
      this.current = null;
      if (this.threads.length) await this.open(this.threads[0].id);
      else this.showEmpty();
    }
  }

  showEmpty() {
    this.messages.replaceChildren(
      el("p", "empty", "Ask the agent something. With the code interpreter it can read the files in Setup, run Python, and draw charts."),
    );
  }

  // Conversation ---------------------------------------------------------------------------------

  async open(threadId) {
    if (this.running) return;
    this.current = threadId;
    this.error.textContent = "";
    this.showThreads();
    this.messages.replaceChildren(el("p", "loading", "Loading the thread…"));
    const path = `/threads/${encodeURIComponent(threadId)}`;
    let messages;
    let runs;
    try {
      [messages, runs] = await Promise.all([listAll(`${path}/messages`), listAll(`${path}/runs`)]);
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 404) {
        this.forget(threadId);
        this.messages.replaceChildren(el("p", "note", "That thread no longer exists on the server."));
        return;
      }
      throw failure;
    }
    const steps = await Promise.all(
      runs.map((run) => listAll(`${path}/runs/${encodeURIComponent(run.id)}/steps`)),
    );
    if (this.current !== threadId) return;
    this.messages.replaceChildren();
    const byId = new Map(messages.map((m) => [m.id, m]));
    const claimed = new Set(
      steps.flat().map((step) => step.step_details?.message_creation?.message_id).filter(Boolean),
    );
    // Messages and runs in time order; a run shows its steps and the answer its steps made.
    const timeline = [
      ...messages.map((m, order) => ({ at: m.created_at, order, message: m })),
      ...runs.map((r, i) => ({ at: r.created_at, order: messages.length + i, run: r, steps: steps[i] })),
    ].sort((a, b) => a.at - b.at || a.order - b.order);
    let active = null;
    for (const item of timeline) {
      if (item.run) {
        const view = RunView.fromStored(this.messages, item.run, item.steps, byId);
        if (ACTIVE.has(item.run.status)) active = view;
      } else if (!claimed.has(item.message.id)) {
        this.showMessage(item.message);
      }
    }
    if (!this.messages.children.length) this.showEmpty();
    this.scrollDown(true);
    if (active) this.follow(threadId, active);
  }

  showMessage(message) {
    if (message.role === "assistant") {
      const view = RunView.fromStored(this.messages, { id: "", status: "completed" }, [], new Map());
      view.status.remove();
      view.message(message.id).setContent(message.content);
      return;
    }
    const node = el("div", "message user");
    for (const part of message.content) {
      if (part.type === "text") node.append(el("p", "user-text", part.text.value));
    }
    if (message.attachments?.length) {
      const chips = el("ul", "chips");
      for (const attachment of message.attachments) chips.append(el("li", "chip", attachment.file_id));
      node.append(chips);
      this.nameAttachments(chips, message.attachments);
    }
    this.messages.append(node);
  }

  async nameAttachments(chips, attachments) {
    for (const [index, attachment] of attachments.entries()) {
      try {
        const file = await get(`/files/${encodeURIComponent(attachment.file_id)}`);
        chips.children[index].textContent = file.filename;
      } catch {
        // Keep the id.
      }
    }
  }

  scrollDown(force = false) {
    const box = this.messages;
    if (force || box.scrollHeight - box.scrollTop - box.clientHeight < 160) box.scrollTop = box.scrollHeight;
  }

  // A run that was already going when the thread was opened: poll it, then reload the thread.
  async follow(threadId, view) {
    this.setRunning({ view, threadId });
    while (this.current === threadId && !view.done) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      view.setRun(await get(`/threads/${threadId}/runs/${view.run.id}`));
    }
    this.setRunning(null);
    if (this.current === threadId) await this.open(threadId);
  }

  // Composer -------------------------------------------------------------------------------------

  attach(file) {
    const chip = el("li", "chip uploading");
    const label = el("span", "", `${file.name} · ${humanSize(file.size)}`);
    const progress = el("progress");
    progress.max = 1;
    progress.value = 0;
    const remove = el("button", "quiet small", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${file.name}`);
    chip.append(label, progress, remove);
    this.q("#attachments").append(chip);
    const entry = { name: file.name, upload: uploadFile(file, (f) => (progress.value = f)) };
    this.attachments.push(entry);
    remove.addEventListener("click", () => {
      this.attachments = this.attachments.filter((a) => a !== entry);
      chip.remove();
    });
    entry.upload.then(
      () => {
        chip.classList.remove("uploading");
        progress.remove();
      },
      (failure) => {
        chip.classList.add("failed");
        label.textContent = `${file.name}: ${failure.message}`;
      },
    );
  }

  async send() {
    if (this.running) return;
    const text = this.prompt.value.trim();
    if (!text && !this.attachments.length) return;
    this.error.textContent = "";
    this.sendButton.disabled = true;
    try {
      await this.setup.flush();
      const uploaded = await Promise.all(this.attachments.map((a) => a.upload));
      const threadId = this.current || (await this.newThread());
      const message = await post(`/threads/${threadId}/messages`, {
        role: "user",
        content: text || "(see the attached files)",
        attachments: uploaded.map((file) => ({ file_id: file.id, tools: [{ type: "code_interpreter" }] })),
      });
      this.prompt.value = "";
      this.attachments = [];
      this.q("#attachments").replaceChildren();
      if (this.messages.querySelector(".empty")) this.messages.replaceChildren();
      this.showMessage(message);
      this.nameThread(threadId, text);
      await this.stream(threadId);
    } finally {
      this.sendButton.disabled = false;
    }
  }

  nameThread(threadId, text) {
    const entry = this.threads.find((t) => t.id === threadId);
    if (!entry || entry.title || !text) return;
    const title = text.length > 60 ? `${text.slice(0, 57)}…` : text;
    this.remember({ ...entry, title });
    post(`/threads/${threadId}`, { metadata: { playground_agent: this.agentId, title } }).catch(() => {});
  }

  setRunning(running) {
    this.running = running;
    this.stopButton.hidden = !running;
    this.stopButton.disabled = false;
    this.stopButton.textContent = "Stop";
    this.sendButton.hidden = Boolean(running);
    this.root.classList.toggle("is-running", Boolean(running));
  }

  async stream(threadId) {
    const view = new RunView(this.messages);
    view.live = true;
    this.setRunning({ view, threadId });
    this.scrollDown(true);
    try {
      await streamRun(threadId, { assistant_id: this.agentId }, (name, data) => {
        if (data === null) return; // done
        view.handle(name, data);
        this.scrollDown();
      });
      if (!view.done && view.run) view.setRun(await get(`/threads/${threadId}/runs/${view.run.id}`));
      if (!view.done) view.showError("the stream ended before the run finished.");
    } catch (failure) {
      view.showError(failure.message);
    } finally {
      this.setRunning(null);
      this.scrollDown();
    }
  }

  async stop() {
    const running = this.running;
    if (!running?.view.run) return;
    this.stopButton.disabled = true;
    this.stopButton.textContent = "Stopping…";
    try {
      const run = await post(`/threads/${running.threadId}/runs/${running.view.run.id}/cancel`);
      if (!running.view.done) running.view.setRun(run);
    } catch (failure) {
      this.fail(failure);
      this.stopButton.disabled = false;
      this.stopButton.textContent = "Stop";
    }
  }
}
