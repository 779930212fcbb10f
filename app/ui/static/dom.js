// Small DOM helpers: every value from the service goes in as text, never as HTML.
export const DATA = JSON.parse(document.getElementById("page-data").textContent);
export const T = DATA.text;
export const FIELDS = Object.fromEntries(DATA.fields.map((f) => [f.name, f]));

export function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "rect", "line", "text", "title", "desc"].includes(tag);
  const node = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

export function percent(p) {
  return `${(100 * p).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0)} %`;
}

export function fieldLabel(name) {
  return FIELDS[name] ? FIELDS[name].label : name;
}

export function say(node, message) {
  node.textContent = message;
}
