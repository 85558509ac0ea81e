// Small pieces every screen shares: templates from index.html and the breadcrumb.

import { el } from "./render.js";

export const DEFAULT_MODEL = "gpt-4o-mini";

export function template(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

export function setCrumbs(...items) {
  const crumbs = document.getElementById("crumbs");
  crumbs.replaceChildren();
  for (const [label, href] of items) {
    const item = href ? el("a", "", label) : el("span", "", label);
    if (href) item.href = href;
    crumbs.append(el("span", "sep", "/"), item);
  }
}

export function agentLabel(agent) {
  return agent.name || "Unnamed agent";
}

// Files chosen in a file input or dropped on a zone, handed to onFiles as an array.
export function acceptFiles(picker, zone, onFiles) {
  picker.addEventListener("change", () => {
    onFiles([...picker.files]);
    picker.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    onFiles([...event.dataTransfer.files]);
  });
}
