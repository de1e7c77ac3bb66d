/**
 * A JSON Schema shown as a reader needs it: a one-line type (`array of Cart`, `integer ≥ 1`)
 * and, for objects, a table of properties, nested schemas expanding in place. A `$ref` to a
 * component is a link to that component's section and expands in place too, except inside
 * itself (a recursive schema stops at the link).
 */
import { h, slug } from "./dom.js";
import { resolvePointer, schemaName, type OpenApiDocument, type Schema } from "./openapi.js";

/** The id of a component schema's section on the page. */
export function schemaAnchor(name: string): string {
  return `schema-${slug(name)}`;
}

/** A short type for `schema`: `string`, `integer | null`, `array of CartLine`, `"open" | "merged"`. */
export function typeLabel(schema: Schema): string {
  if (schema.$ref !== undefined) return schemaName(schema.$ref) ?? schema.$ref;
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum !== undefined) return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  if (schema.oneOf !== undefined) return schema.oneOf.map(typeLabel).join(" | ");
  if (schema.anyOf !== undefined) return schema.anyOf.map(typeLabel).join(" | ");
  if (schema.allOf !== undefined) return schema.allOf.map(typeLabel).join(" & ");
  const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
  const named = types.map((type) => (type === "array" && schema.items !== undefined ? `array of ${typeLabel(schema.items)}` : type));
  if (named.length === 0) return schema.properties !== undefined ? "object" : "any";
  return named.join(" | ");
}

/** The constraints of `schema` in words: bounds, lengths, pattern, format, default. */
export function constraints(schema: Schema): string[] {
  const notes: string[] = [];
  if (schema.format !== undefined) notes.push(`format ${schema.format}`);
  if (schema.minimum !== undefined) notes.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) notes.push(`≤ ${schema.maximum}`);
  if (schema.minLength !== undefined) notes.push(`length ≥ ${schema.minLength}`);
  if (schema.maxLength !== undefined) notes.push(`length ≤ ${schema.maxLength}`);
  if (schema.minItems !== undefined) notes.push(`items ≥ ${schema.minItems}`);
  if (schema.pattern !== undefined) notes.push(`pattern ${schema.pattern}`);
  if (schema.not?.const !== undefined) notes.push(`not ${JSON.stringify(schema.not.const)}`);
  if (schema.default !== undefined) notes.push(`default ${JSON.stringify(schema.default)}`);
  if (schema.additionalProperties === false) notes.push("no other properties");
  return notes;
}

/** A link to a component schema (or the reference's text when it is not one). */
function refLink(ref: string): Node {
  const name = schemaName(ref);
  return name === null ? document.createTextNode(ref) : h("a", { href: `#${schemaAnchor(name)}` }, name);
}

/** The type line of `schema`: references as links, then its constraints. */
function typeLine(schema: Schema): HTMLElement {
  const line = h("span", { class: "type" });
  if (schema.$ref !== undefined) line.append(refLink(schema.$ref));
  else if (schema.type === "array" && schema.items?.$ref !== undefined) line.append("array of ", refLink(schema.items.$ref));
  else line.append(typeLabel(schema));
  const notes = constraints(schema);
  if (notes.length > 0) line.append(h("span", { class: "constraints" }, ` (${notes.join(", ")})`));
  return line;
}

/**
 * `schema` as DOM: its type line, its description, and what it holds (properties, items,
 * the referenced component), expanded down to where a reference would repeat itself.
 */
export function renderSchema(openapi: OpenApiDocument, schema: Schema, open: readonly string[] = []): HTMLElement {
  const block = h("div", { class: "schema" }, typeLine(schema));
  if (schema.description !== undefined) block.append(h("p", { class: "description" }, schema.description));
  const body = schemaBody(openapi, schema, open);
  if (body !== null) block.append(body);
  return block;
}

function schemaBody(openapi: OpenApiDocument, schema: Schema, open: readonly string[]): HTMLElement | null {
  if (schema.$ref !== undefined) {
    if (open.includes(schema.$ref)) return null;
    const target = resolvePointer(openapi, schema.$ref) as Schema;
    const inner = schemaBody(openapi, target, [...open, schema.$ref]);
    if (inner === null) return null;
    return h("details", { class: "expansion" }, h("summary", {}, `${typeLabel(schema)}: ${typeLabel(target)}`), inner);
  }
  if (schema.properties !== undefined) return propertiesTable(openapi, schema, open);
  if (schema.items !== undefined) {
    const inner = schemaBody(openapi, schema.items, open);
    return inner === null ? null : h("div", { class: "items" }, inner);
  }
  if (typeof schema.additionalProperties === "object") {
    return h("div", { class: "items" }, "each value: ", renderSchema(openapi, schema.additionalProperties, open));
  }
  return null;
}

function propertiesTable(openapi: OpenApiDocument, schema: Schema, open: readonly string[]): HTMLElement {
  const required = new Set(schema.required ?? []);
  const rows = Object.entries(schema.properties ?? {}).map(([name, property]) =>
    h(
      "tr",
      {},
      h("td", { class: "name" }, h("code", {}, name), required.has(name) ? h("span", { class: "required" }, " required") : null),
      h("td", {}, renderSchema(openapi, property, open)),
    ),
  );
  return h("table", { class: "properties" }, h("tbody", {}, ...rows));
}
