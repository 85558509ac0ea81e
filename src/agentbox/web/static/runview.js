// One run in the conversation: its code-interpreter steps, its answer and its status, built either
// from the live SSE events (spec §1.6) or from the stored run, steps and messages.

import { el, highlightInto, imageFigure, textPartInto } from "./render.js";

const TERMINAL = new Set(["completed", "failed", "cancelled", "expired", "incomplete", "requires_action"]);

export function statusWords(run) {
  switch (run.status) {
    case "queued":
      return "Queued…";
    case "in_progress":
      return "Running…";
    case "cancelling":
      return "Stopping…";
    case "cancelled":
      return "Stopped: the run was cancelled.";
    case "expired":
      return "Expired: the run ran out of time.";
    case "requires_action":
      return "Waiting for function results, which the playground cannot provide.";
    case "incomplete":
      return `Incomplete: ${run.incomplete_details?.reason?.replaceAll("_", " ") || "the run stopped early"}.`;
    case "failed": {
      const error = run.last_error;
      return error ? `Failed: ${error.message}` : "Failed.";
    }
    case "completed": {
      const tokens = run.usage?.total_tokens;
      return tokens ? `Completed · ${tokens} tokens` : "Completed";
    }
    default:
      return run.status;
  }
}

const RAISED = /^Traceback \(most recent call last\)|^\w+(Error|Exception|Interrupt): /m;

class CodeCall {
  // Live calls stay open while they run, so the code and its output can be watched, and fold
  // when done unless the user opened or closed them meanwhile.
  constructor(container, live) {
    this.input = "";
    this.outputs = [];
    this.details = el("details", "step code-step");
    this.details.open = live;
    this.touched = false;
    const summary = el("summary");
    summary.addEventListener("click", () => {
      this.touched = true;
    });
    this.title = el("span", "step-title", "Code interpreter");
    this.state = el("span", "step-status", live ? "writing code…" : "");
    this.preview = el("code", "step-preview");
    summary.append(this.title, this.state, this.preview);
    const pre = el("pre", "code");
    this.code = el("code", "language-python");
    pre.append(this.code);
    this.outputList = el("div", "outputs");
    this.details.append(summary, pre, this.outputList);
    container.append(this.details);
  }

  addInput(piece) {
    this.input += piece;
    this.code.textContent = this.input;
    this.state.textContent = "running…";
  }

  // Outputs merge by index, logs concatenate (as the SDKs accumulate deltas).
  addOutput(output) {
    const index = output.index ?? this.outputs.length;
    let slot = this.outputs[index];
    if (!slot) {
      slot = { type: output.type, logs: "", node: null };
      this.outputs[index] = slot;
    }
    if (output.type === "logs") {
      slot.logs += output.logs || "";
      if (!slot.node) {
        slot.node = el("pre", "logs");
        this.place(index, slot.node);
      }
      slot.node.textContent = slot.logs;
    } else if (output.type === "image" && output.image?.file_id && !slot.node) {
      slot.node = imageFigure(output.image.file_id, "Figure from the code");
      this.place(index, slot.node);
    }
  }

  place(index, node) {
    node.dataset.index = index;
    const later = [...this.outputList.children].find((child) => Number(child.dataset.index) > index);
    this.outputList.insertBefore(node, later || null);
  }

  finish(call, status) {
    this.finished = true;
    const interpreter = call?.code_interpreter;
    if (interpreter) {
      this.input = interpreter.input || "";
      this.outputs = [];
      this.outputList.replaceChildren();
      (interpreter.outputs || []).forEach((output, index) => this.addOutput({ ...output, index }));
    }
    highlightInto(this.code, this.input);
    const logs = this.outputs.filter((o) => o && o.type === "logs").map((o) => o.logs).join("");
    const images = this.outputs.filter((o) => o && o.type === "image").length;
    let words = status.replaceAll("_", " ");
    if (status === "completed") {
      words = RAISED.test(logs) ? "raised an error" : "ran";
      if (images) words += ` · ${images} image${images > 1 ? "s" : ""}`;
    }
    this.state.textContent = words;
    this.details.dataset.status = status;
    this.details.dataset.raised = String(RAISED.test(logs));
    this.preview.textContent = this.input.split("\n").find((line) => line.trim()) || "";
    if (!this.touched) this.details.open = false;
  }
}

class MessageView {
  constructor(container) {
    this.parts = [];
    this.node = el("div", "message assistant");
    this.body = el("div", "message-body");
    this.node.append(this.body);
    container.append(this.node);
    this.pending = false;
  }

  addDelta(part) {
    const index = part.index ?? this.parts.length;
    let slot = this.parts[index];
    if (!slot) {
      slot = { type: part.type, value: "", annotations: [], node: null };
      this.parts[index] = slot;
    }
    if (part.type === "text") {
      slot.value += part.text?.value || "";
      for (const note of part.text?.annotations || []) slot.annotations[note.index ?? slot.annotations.length] = note;
      this.scheduleText(index);
    } else if (part.type === "image_file" && !slot.node) {
      slot.node = imageFigure(part.image_file.file_id);
      this.place(index, slot.node);
    } else if (part.type === "refusal") {
      slot.value += part.refusal || "";
      this.showPlain(index, slot);
    }
  }

  setContent(content) {
    this.parts = [];
    this.body.replaceChildren();
    content.forEach((part, index) => {
      if (part.type === "text") {
        this.parts[index] = { type: "text", value: part.text.value, annotations: part.text.annotations || [] };
        this.renderText(index);
      } else if (part.type === "image_file") {
        const node = imageFigure(part.image_file.file_id);
        this.parts[index] = { type: "image_file", node };
        this.place(index, node);
      } else if (part.type === "image_url") {
        this.parts[index] = { type: "image_url" };
        this.place(index, el("p", "note", "(an image given by URL, not shown)"));
      } else if (part.type === "refusal") {
        this.parts[index] = { type: "refusal", value: part.refusal };
        this.showPlain(index, this.parts[index]);
      }
    });
  }

  // Re-rendering markdown on every token is wasteful; once per frame is plenty.
  scheduleText(index) {
    this.dirty = this.dirty || new Set();
    this.dirty.add(index);
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      for (const i of this.dirty) this.renderText(i);
      this.dirty.clear();
    });
  }

  renderText(index) {
    const slot = this.parts[index];
    if (!slot.node) {
      slot.node = el("div", "text");
      this.place(index, slot.node);
    }
    textPartInto(slot.node, slot.value, slot.annotations.filter(Boolean));
  }

  showPlain(index, slot) {
    if (!slot.node) {
      slot.node = el("p", "refusal");
      this.place(index, slot.node);
    }
    slot.node.textContent = slot.value;
  }

  place(index, node) {
    node.dataset.index = index;
    const later = [...this.body.children].find((child) => Number(child.dataset.index) > index);
    this.body.insertBefore(node, later || null);
  }
}

export class RunView {
  constructor(container) {
    this.node = el("div", "run");
    this.flow = el("div", "run-flow");
    this.status = el("p", "run-status", "Starting…");
    this.status.setAttribute("role", "status");
    this.node.append(this.flow, this.status);
    container.append(this.node);
    this.calls = new Map(); // `${stepId}:${index}` → CodeCall
    this.messages = new Map();
    this.run = null;
    this.live = false;
  }

  get done() {
    return this.run !== null && TERMINAL.has(this.run.status);
  }

  setRun(run) {
    this.run = run;
    this.node.dataset.runId = run.id;
    this.node.dataset.status = run.status;
    this.status.textContent = statusWords(run);
    this.status.className = `run-status ${run.status}`;
    // A run that ends mid-step (cancelled, failed) may not report the step's end separately.
    if (this.done) {
      for (const call of this.calls.values()) if (!call.finished) call.finish(null, run.status);
    }
  }

  showError(message) {
    this.node.dataset.status = "error";
    this.status.textContent = `Error: ${message}`;
    this.status.className = "run-status failed";
  }

  call(stepId, index) {
    const key = `${stepId}:${index}`;
    if (!this.calls.has(key)) this.calls.set(key, new CodeCall(this.flow, this.live));
    return this.calls.get(key);
  }

  message(id) {
    if (!this.messages.has(id)) this.messages.set(id, new MessageView(this.flow));
    return this.messages.get(id);
  }

  // Apply one server-sent event.
  handle(name, data) {
    if (name.startsWith("thread.run.step.")) {
      this.handleStep(name, data);
    } else if (name.startsWith("thread.run.")) {
      this.setRun(data);
    } else if (name === "thread.message.created") {
      this.message(data.id);
    } else if (name === "thread.message.delta") {
      const view = this.message(data.id);
      for (const part of data.delta?.content || []) view.addDelta(part);
    } else if (name === "thread.message.completed" || name === "thread.message.incomplete") {
      this.message(data.id).setContent(data.content || []);
    } else if (name === "error") {
      this.showError(data?.error?.message || "the stream reported an error");
    }
  }

  handleStep(name, data) {
    if (name === "thread.run.step.delta") {
      const calls = data.delta?.step_details?.tool_calls || [];
      for (const call of calls) {
        if (call.type && call.type !== "code_interpreter") continue;
        const view = this.call(data.id, call.index ?? 0);
        const interpreter = call.code_interpreter || {};
        if (interpreter.input) view.addInput(interpreter.input);
        for (const output of interpreter.outputs || []) view.addOutput(output);
      }
      return;
    }
    if (data.type !== "tool_calls") return;
    if (name === "thread.run.step.created" || name === "thread.run.step.in_progress") return;
    this.finishStep(data);
  }

  finishStep(step) {
    (step.step_details?.tool_calls || []).forEach((call, index) => {
      if (call.type === "code_interpreter") this.call(step.id, index).finish(call, step.status);
    });
  }

  // A stored run: its steps in order, each answer message where its step put it.
  static fromStored(container, run, steps, messagesById) {
    const view = new RunView(container);
    for (const step of steps) {
      if (step.type === "tool_calls") view.finishStep(step);
      else if (step.type === "message_creation") {
        const message = messagesById.get(step.step_details.message_creation.message_id);
        if (message) view.message(message.id).setContent(message.content);
      }
    }
    view.setRun(run);
    return view;
  }
}
