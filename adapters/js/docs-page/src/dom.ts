/** A small element builder: the page is plain DOM, no framework. */

export type Child = Node | string | null | undefined | false;

/** `<tag attrs...>children</tag>`; `null`, `undefined` and `false` children are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child);
  }
  return element;
}

/** A string safe in an element id or `data-testid` (letters, digits, `-`, `_`, `.`). */
export function slug(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]+/g, "-");
}
