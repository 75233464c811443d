// A cell's outputs, from the shared document, as nbformat has them. Kernel HTML and Markdown
// are sanitised with DOMPurify before they reach the page; text goes in as text (ANSI colours
// become spans, with everything else escaped); images only as data: URLs in <img>.
import DOMPurify from "dompurify";
import { AnsiUp } from "ansi_up";
import { marked } from "marked";
import { h } from "./dom.js";

// Kernel HTML (and a cell's Markdown) may not make the page fetch anything, or go anywhere,
// by itself: this server would answer with the viewer's cookies, and any other would learn who
// looks at the pad, and when. Of the attributes that hold a URL, only these keep one: images
// from data: URLs (nothing leaves the page), links (followed only when clicked, in a new tab,
// never in place of the pad), and references within the output itself (an SVG gradient, an
// image map). Every other URL attribute goes, whatever element it is on.
const LINKS = new Set(["a", "area"]);
const URL_ATTRIBUTES = new Set([
  "action", "archive", "background", "cite", "classid", "codebase", "data", "dynsrc", "formaction",
  "href", "icon", "imagesrcset", "longdesc", "lowsrc", "manifest", "ping", "poster", "profile",
  "src", "srcset", "usemap", "xlink:href", "xml:base",
]);

function urlKept(tag, name, value) {
  if (name === "src") return tag === "img" && value.startsWith("data:");
  if (name === "href" || name === "xlink:href") return LINKS.has(tag) || value.startsWith("#");
  if (name === "usemap") return value.startsWith("#");
  return false;
}

// SVG's presentation attributes are CSS: fill="url(https://...)" fetches, and so do mask,
// filter, clip-path and the like. Only url(#id), a reference within the output, stays; a CSS
// escape (a backslash) could spell any function's name, so none is taken.
const SVG = "http://www.w3.org/2000/svg";
const CSS_FETCH = /\\|(?:url|src|image|image-set|-webkit-image-set|cross-fade|element)\s*\(\s*(?!['"]?#)/i;

DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
  const tag = node.nodeName.toLowerCase();
  const { attrName: name, attrValue: value } = data;
  if (URL_ATTRIBUTES.has(name)) {
    if (!urlKept(tag, name, value)) data.keepAttr = false;
  } else if ((node.namespaceURI === SVG || name === "style") && CSS_FETCH.test(value)) {
    data.keepAttr = false;
  }
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  // HTML's <a> and SVG's <a> (whose nodeName is lower case) alike.
  if (LINKS.has(node.nodeName.toLowerCase()) && (node.hasAttribute("href") || node.hasAttribute("xlink:href"))) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
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

export function ansiBlock(text, className) {
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
