// A cell's outputs, from the shared document, as nbformat has them. Kernel HTML and Markdown
// are sanitised with DOMPurify before they reach the page; text goes in as text (ANSI colours
// become spans, with everything else escaped); images only as data: URLs in <img>.
import DOMPurify from "dompurify";
import { AnsiUp } from "ansi_up";
import { marked } from "marked";
import { h } from "./dom.js";

// Kernel HTML's links open in a new tab, never in place of the pad.
// Its images load only from data: URLs (nothing from this server or elsewhere).
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.getAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
  if (node.hasAttribute("src") && !node.getAttribute("src").startsWith("data:")) node.removeAttribute("src");
});

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif"];

export function sanitize(html) {
  // No styles, classes or ids: kernel output must not dress up as the pad's own controls.
  return DOMPurify.sanitize(html, {
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
    FORBID_ATTR: ["style", "class", "id"],
  });
}

export function markdownHtml(text) {
  return sanitize(marked.parse(text, { async: false }));
}

function ansiBlock(text, className) {
  // A parser per output: ansi_up carries colours over from one call to the next.
  const ansi = new AnsiUp();
  ansi.use_classes = true;
  const pre = h("pre", { className });
  pre.innerHTML = ansi.ansi_to_html(text); // ansi_up escapes the text itself
  return pre;
}

function joined(value) {
  return Array.isArray(value) ? value.join("") : String(value ?? "");
}

function rich(data) {
  if (data["text/html"] !== undefined) {
    const div = h("div", { className: "output-html" });
    div.innerHTML = sanitize(joined(data["text/html"]));
    return div;
  }
  for (const type of IMAGE_TYPES) {
    if (data[type] !== undefined) {
      return h("img", { className: "output-image", alt: "image output", src: `data:${type};base64,${joined(data[type]).replace(/\s/g, "")}` });
    }
  }
  if (data["image/svg+xml"] !== undefined) {
    // As an image, SVG cannot run scripts.
    return h("img", { className: "output-image", alt: "SVG output", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(joined(data["image/svg+xml"]))}` });
  }
  if (data["text/markdown"] !== undefined) {
    const div = h("div", { className: "output-markdown" });
    div.innerHTML = markdownHtml(joined(data["text/markdown"]));
    return div;
  }
  if (data["text/plain"] !== undefined) return ansiBlock(joined(data["text/plain"]), "output-text");
  return h("pre", { className: "output-text" }, `[output of type ${Object.keys(data).join(", ")}]`);
}

/** The element of one output (a plain object: the Yjs map as JSON). */
export function renderOutput(output) {
  switch (output.output_type) {
    case "stream":
      return ansiBlock(joined(output.text), `output-stream ${output.name === "stderr" ? "stderr" : "stdout"}`);
    case "error":
      return ansiBlock((output.traceback || []).join("\n") || `${output.ename}: ${output.evalue}`, "output-error");
    case "execute_result":
    case "display_data":
      return rich(output.data || {});
    default:
      return h("pre", { className: "output-text" }, `[${output.output_type}]`);
  }
}
