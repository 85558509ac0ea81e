// The shell: sign-in, the list of agents, and the routes to an agent's "Create and debug" screen
// and to the Console (code without a model).

import { ApiError, del, get, listAll, post, saveKey, savedKey } from "./api.js";
import { openConsole } from "./console.js";
import { el } from "./render.js";
import { DEFAULT_MODEL, agentLabel, setCrumbs, template } from "./shell.js";
import { openWorkbench } from "./workbench.js";

const main = document.getElementById("main");
const signOut = document.getElementById("sign-out");
const tabs = document.getElementById("tabs");
let leaveView = null;

function show(view) {
  main.replaceChildren(view);
}

// The section tabs: Agents (needs a model to run) and Console (needs none).
function showTab(name) {
  tabs.hidden = !name;
  for (const link of tabs.querySelectorAll("a")) {
    if (link.dataset.tab === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function showSignIn(message = "") {
  signOut.hidden = true;
  showTab(null);
  setCrumbs();
  const view = template("tpl-signin");
  const form = view.querySelector("#signin-form");
  const error = view.querySelector("#signin-error");
  error.textContent = message;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = form.elements.key.value.trim();
    saveKey(key);
    try {
      await get("/assistants?limit=1");
      route();
    } catch (failure) {
      saveKey("");
      error.textContent =
        failure instanceof ApiError && failure.status === 401
          ? "This server did not accept that key."
          : `Could not reach the server: ${failure.message}`;
    }
  });
  show(view);
  view.querySelector("#api-key").focus();
}

async function showAgents() {
  setCrumbs(); // the Agents tab says where this is
  const view = template("tpl-agents");
  const list = view.querySelector("#agent-list");
  const empty = view.querySelector("#agents-empty");
  const error = view.querySelector("#agents-error");
  const form = view.querySelector("#new-agent");
  show(view);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const name = form.elements.name.value.trim();
      const agent = await post("/assistants", { model: DEFAULT_MODEL, name: name || null });
      location.hash = `#/agents/${agent.id}`;
    } catch (failure) {
      error.textContent = failure.message;
    }
  });

  const agents = await listAll("/assistants", { order: "desc" });
  empty.hidden = agents.length > 0;
  for (const agent of agents) list.append(agentRow(agent, error));
}

function agentRow(agent, error) {
  const row = template("tpl-agent-row");
  row.dataset.agentId = agent.id;
  const href = `#/agents/${encodeURIComponent(agent.id)}`;
  const name = row.querySelector(".agent-name");
  name.href = href;
  name.textContent = agentLabel(agent);
  const tools = agent.tools.map((t) => (t.type === "code_interpreter" ? "Code interpreter" : t.type));
  row.querySelector(".agent-meta").textContent = [agent.model, ...tools, agent.id].join(" · ");
  row.querySelector(".open").href = href;

  const rename = row.querySelector(".rename");
  const actions = row.querySelector(".row-actions");
  row.querySelector(".rename-button").addEventListener("click", () => {
    rename.hidden = false;
    actions.hidden = true;
    rename.elements.name.value = agent.name || "";
    rename.elements.name.focus();
  });
  rename.querySelector(".cancel").addEventListener("click", () => {
    rename.hidden = true;
    actions.hidden = false;
  });
  rename.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      agent = await post(`/assistants/${agent.id}`, { name: rename.elements.name.value.trim() });
      name.textContent = agentLabel(agent);
      rename.hidden = true;
      actions.hidden = false;
    } catch (failure) {
      error.textContent = failure.message;
    }
  });

  // Two clicks to delete: the first arms the button for a few seconds.
  const remove = row.querySelector(".delete-button");
  let armed = null;
  remove.addEventListener("click", async () => {
    if (!armed) {
      remove.textContent = "Click again to delete";
      armed = setTimeout(() => {
        armed = null;
        remove.textContent = "Delete";
      }, 4000);
      return;
    }
    clearTimeout(armed);
    try {
      await del(`/assistants/${agent.id}`);
      localStorage.removeItem(`agentbox.threads.${agent.id}`);
      row.remove();
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  return row;
}

async function route() {
  if (leaveView) leaveView();
  leaveView = null;
  if (!savedKey()) {
    showSignIn();
    return;
  }
  signOut.hidden = false;
  const match = location.hash.match(/^#\/agents\/([^/]+)$/);
  const consoleMatch = location.hash.match(/^#\/console(?:\/([^/]+))?$/);
  showTab(consoleMatch ? "console" : "agents");
  try {
    if (match) leaveView = await openWorkbench(main, decodeURIComponent(match[1]));
    else if (consoleMatch) leaveView = await openConsole(main, consoleMatch[1] && decodeURIComponent(consoleMatch[1]));
    else await showAgents();
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) {
      saveKey("");
      showSignIn("This server no longer accepts the saved key. Sign in again.");
    } else {
      show(el("p", "error", failure.message));
    }
  }
}

signOut.addEventListener("click", () => {
  saveKey("");
  location.hash = "#/";
  route();
});
window.addEventListener("hashchange", route);
route();
