// Turning untrusted model output into DOM: markdown only through DOMPurify, everything else as text.

import { marked } from "./vendor/marked.js";
import DOMPurify from "./vendor/purify.js";
import hljs from "./vendor/highlight.js";
import python from "./vendor/python.js";
import { fileContent } from "./api.js";

hljs.registerLanguage("python", python);

const FILE_LINK = "#agentbox-file:";

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && /^https?:/i.test(node.getAttribute("href") || "")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Sanitised HTML for a markdown string; the only place the page assigns innerHTML from data.
export function markdownInto(target, markdown) {
  const html = marked.parse(markdown, { gfm: true, async: false });
  target.innerHTML = DOMPurify.sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option"],
    FORBID_ATTR: ["style"],
  });
  for (const code of target.querySelectorAll("pre code")) {
    const language = [...code.classList].find((c) => c.startsWith("language-"))?.slice(9);
    if (language === "python" || language === "py") highlightInto(code, code.textContent);
  }
}

export function highlightInto(code, source) {
  code.classList.add("hljs", "language-python");
  // highlight.js escapes the source; its output is markup of spans only.
  code.innerHTML = hljs.highlight(source, { language: "python", ignoreIllegals: true }).value;
}

function basename(path) {
  return path.split("/").filter(Boolean).pop() || "download";
}

// Replace each file_path annotation's span with a link the page can resolve to the real file.
// Offsets count code points (the server is Python), so work on an array of them.
export function linkAnnotations(value, annotations) {
  const chars = Array.from(value);
  const names = new Map();
  const notes = (annotations || [])
    .filter((a) => a.type === "file_path" && a.file_path?.file_id && a.end_index > a.start_index)
    .sort((a, b) => b.start_index - a.start_index);
  for (const note of notes) {
    const id = note.file_path.file_id;
    const span = chars.slice(note.start_index, note.end_index).join("");
    names.set(id, basename(note.text || span));
    const before = chars.slice(Math.max(0, note.start_index - 2), note.start_index).join("");
    const url = FILE_LINK + encodeURIComponent(id);
    const label = names.get(id).replace(/([\\[\]()*_`<>])/g, "\\$1");
    const replacement = before === "](" ? url : `[${label}](${url})`;
    chars.splice(note.start_index, note.end_index - note.start_index, ...Array.from(replacement));
  }
  return { markdown: chars.join(""), names };
}

const blobUrls = new Map();

export async function fileUrl(fileId) {
  if (!blobUrls.has(fileId)) {
    blobUrls.set(
      fileId,
      fileContent(fileId).then((blob) => URL.createObjectURL(blob)),
    );
  }
  try {
    return await blobUrls.get(fileId);
  } catch (error) {
    blobUrls.delete(fileId);
    throw error;
  }
}

export async function download(fileId, name) {
  const url = await fileUrl(fileId);
  const link = el("a");
  link.href = url;
  link.download = name || fileId;
  document.body.append(link);
  link.click();
  link.remove();
}

export function imageFigure(fileId, caption) {
  const figure = el("figure", "image");
  const img = el("img");
  img.alt = caption || "Image output";
  img.dataset.fileId = fileId;
  figure.append(img);
  fileUrl(fileId)
    .then((url) => {
      img.src = url;
    })
    .catch((error) => {
      figure.append(el("figcaption", "error", `Could not load the image: ${error.message}`));
    });
  return figure;
}

// Wire the file links of rendered text to downloads of the real files, and show the images it
// embeds from the sandbox; any other image address would fetch something no one vetted, so only
// its description stays.
export function activateFileLinks(root, names) {
  for (const img of root.querySelectorAll("img")) {
    const src = img.getAttribute("src") || "";
    if (src.startsWith(FILE_LINK)) {
      const fileId = decodeURIComponent(src.slice(FILE_LINK.length));
      img.removeAttribute("src");
      img.replaceWith(imageFigure(fileId, img.getAttribute("alt") || names.get(fileId)));
    } else {
      img.replaceWith(document.createTextNode(img.getAttribute("alt") ? `[image: ${img.getAttribute("alt")}]` : ""));
    }
  }
  for (const link of root.querySelectorAll("a[href]")) {
    const href = link.getAttribute("href");
    if (!href.startsWith(FILE_LINK)) continue;
    const fileId = decodeURIComponent(href.slice(FILE_LINK.length));
    link.classList.add("file-link");
    link.dataset.fileId = fileId;
    link.title = `Download ${names.get(fileId) || fileId}`;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      download(fileId, names.get(fileId)).catch((error) => {
        link.after(el("span", "error", ` (download failed: ${error.message})`));
      });
    });
  }
}

export function textPartInto(target, value, annotations) {
  const { markdown, names } = linkAnnotations(value, annotations);
  markdownInto(target, markdown);
  activateFileLinks(target, names);
}
