// "Create and debug" for one agent: the Setup pane beside the chat pane.

import { get } from "./api.js";
import { ChatPane } from "./chat.js";
import { SetupPane } from "./setup.js";
import { agentLabel, setCrumbs, template } from "./shell.js";

export async function openWorkbench(main, agentId) {
  const agent = await get(`/assistants/${encodeURIComponent(agentId)}`);
  const view = template("tpl-workbench");
  const crumbs = (current) => setCrumbs(["Agents", "#/"], [agentLabel(current), null], ["Create and debug", null]);
  crumbs(agent);
  document.title = `${agentLabel(agent)} · agentbox playground`;
  main.replaceChildren(view);
  // On a phone the Setup pane starts folded once the agent has an action, so the chat is in view.
  if (window.matchMedia("(max-width: 760px)").matches && agent.tools.length) {
    view.querySelector(".setup-fold").open = false;
  }
  const setup = new SetupPane(view, agent, (renamed) => {
    crumbs(renamed);
    document.title = `${agentLabel(renamed)} · agentbox playground`;
  });
  new ChatPane(view, agent.id, setup);
  return () => {
    document.title = "agentbox playground";
  };
}
