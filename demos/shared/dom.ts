/// <reference lib="dom" />
/**
 * DOM helpers: elements with attributes and children (el), elements by id that must exist (byId),
 * and tables of metric rows (metricTable).
 */
import { formatNumber } from "./format.ts";

type Child = Node | string | null | undefined | false;

/** Creates an element with attributes and children (strings become text nodes). */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, children: Child | Child[] = []): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of Array.isArray(children) ? children : [children]) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

/** The element with this id, or an Error naming it (a page's HTML and script out of step). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no element #${id}`);
  return node as T;
}

/**
 * A table of metric rows: name, value(s), and an optional note; `rows` replace the body.
 * Returns an updater. Values are formatted with formatNumber.
 */
export function metricTable(host: HTMLElement, columns: string[]): (rows: { name: string; values: (number | string)[]; note?: string; className?: string }[]) => void {
  const tbody = el("tbody");
  host.append(el("table", { class: "metrics" }, [el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))), tbody]));
  return (rows) => {
    tbody.replaceChildren(
      ...rows.map((r) =>
        el("tr", r.className ? { class: r.className } : {}, [
          el("th", { scope: "row" }, r.name),
          ...r.values.map((v) => el("td", {}, typeof v === "number" ? formatNumber(v) : v)),
          ...(columns.length > r.values.length + 1 ? [el("td", { class: "note" }, r.note ?? "")] : []),
        ])
      ),
    );
  };
}
