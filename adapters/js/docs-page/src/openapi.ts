/**
 * The parts of an OpenAPI 3.1 document the docs page reads, and `$ref` resolution.
 *
 * Only local references (`#/...`, JSON Pointer) are followed: the relay's document has no
 * other kind.
 */

/** A JSON Schema (2020-12) as OpenAPI 3.1 embeds it; only the keywords the page shows are typed. */
export interface Schema {
  $ref?: string;
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  not?: Schema;
  oneOf?: Schema[];
  anyOf?: Schema[];
  allOf?: Schema[];
}

export interface Parameter {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required?: boolean;
  description?: string;
  schema?: Schema;
}

export interface MediaType {
  schema?: Schema;
}

export interface Response {
  description?: string;
  headers?: Record<string, { description?: string; schema?: Schema }>;
  content?: Record<string, MediaType>;
}

export interface RequestBody {
  description?: string;
  required?: boolean;
  content?: Record<string, MediaType>;
}

export interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: (Parameter | Reference)[];
  requestBody?: RequestBody | Reference;
  responses?: Record<string, Response | Reference>;
  security?: Record<string, string[]>[];
}

export interface Reference {
  $ref: string;
}

export interface Tag {
  name: string;
  description?: string;
}

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  tags?: Tag[];
  paths: Record<string, Record<string, unknown>>;
  components?: { schemas?: Record<string, Schema> };
  security?: Record<string, string[]>[];
}

/** The HTTP methods an OpenAPI path item may hold, in the order the page lists them. */
export const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

/** Raised when a `$ref` points outside the document or at nothing. */
export class UnresolvedReference extends Error {
  constructor(readonly ref: string) {
    super(`cannot resolve ${ref}`);
    this.name = "UnresolvedReference";
  }
}

export function isReference(value: unknown): value is Reference {
  return typeof value === "object" && value !== null && typeof (value as Reference).$ref === "string";
}

/** The value a local `$ref` (`#/components/schemas/Cart`) points at. */
export function resolvePointer(document: OpenApiDocument, ref: string): unknown {
  if (!ref.startsWith("#/")) throw new UnresolvedReference(ref);
  let node: unknown = document;
  for (const raw of ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    if (typeof node !== "object" || node === null || !Object.hasOwn(node, key)) throw new UnresolvedReference(ref);
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** `value` itself, or what it refers to when it is a `{$ref}` (followed until it is not). */
export function deref<T>(document: OpenApiDocument, value: T | Reference): T {
  const seen = new Set<string>();
  let current: unknown = value;
  while (isReference(current)) {
    if (seen.has(current.$ref)) throw new UnresolvedReference(current.$ref);
    seen.add(current.$ref);
    current = resolvePointer(document, current.$ref);
  }
  return current as T;
}

/** The component name of a schema reference (`Cart` for `#/components/schemas/Cart`), or null. */
export function schemaName(ref: string): string | null {
  const prefix = "#/components/schemas/";
  return ref.startsWith(prefix) ? ref.slice(prefix.length) : null;
}
