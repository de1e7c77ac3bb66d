/**
 * The page's reading of an OpenAPI document: operations grouped by tag, each with its
 * method, path, parameters (the path item's and its own), request body and responses,
 * references to parameters, bodies and responses resolved. Pure: no DOM.
 */
import {
  deref,
  METHODS,
  type OpenApiDocument,
  type Operation,
  type Parameter,
  type RequestBody,
  type Response,
} from "./openapi.js";

export interface OperationView {
  method: string;
  path: string;
  operationId: string;
  summary: string;
  description: string;
  parameters: Parameter[];
  requestBody: RequestBody | null;
  responses: [status: string, response: Response][];
  /** Whether the document's default security applies (false when the operation waives it). */
  secured: boolean;
}

export interface TagGroup {
  name: string;
  description: string;
  operations: OperationView[];
}

/** The tag of operations that name none. */
export const UNTAGGED = "other";

/** Every operation of `document`, grouped by its first tag: the document's tag order first, then others as met. */
export function groupOperations(document: OpenApiDocument): TagGroup[] {
  const groups = new Map<string, TagGroup>();
  for (const tag of document.tags ?? []) {
    groups.set(tag.name, { name: tag.name, description: tag.description ?? "", operations: [] });
  }
  for (const [path, item] of Object.entries(document.paths)) {
    const shared = (item.parameters ?? []) as Operation["parameters"];
    for (const method of METHODS) {
      const operation = item[method] as Operation | undefined;
      if (operation === undefined) continue;
      const view = operationView(document, method, path, operation, shared ?? []);
      const tag = operation.tags?.[0] ?? UNTAGGED;
      let group = groups.get(tag);
      if (group === undefined) {
        group = { name: tag, description: "", operations: [] };
        groups.set(tag, group);
      }
      group.operations.push(view);
    }
  }
  return [...groups.values()].filter((group) => group.operations.length > 0);
}

function operationView(
  document: OpenApiDocument,
  method: string,
  path: string,
  operation: Operation,
  shared: NonNullable<Operation["parameters"]>,
): OperationView {
  // An operation's parameter overrides the path item's of the same name and location.
  const parameters = new Map<string, Parameter>();
  for (const raw of [...shared, ...(operation.parameters ?? [])]) {
    const parameter = deref<Parameter>(document, raw);
    parameters.set(`${parameter.in}:${parameter.name.toLowerCase()}`, parameter);
  }
  const responses = Object.entries(operation.responses ?? {})
    .map(([status, raw]): [string, Response] => [status, deref<Response>(document, raw)])
    .sort(([a], [b]) => a.localeCompare(b));
  return {
    method,
    path,
    operationId: operation.operationId ?? `${method} ${path}`,
    summary: operation.summary ?? "",
    description: operation.description ?? "",
    parameters: [...parameters.values()],
    requestBody: operation.requestBody === undefined ? null : deref<RequestBody>(document, operation.requestBody),
    responses,
    secured: (operation.security ?? document.security ?? []).length > 0,
  };
}
