/**
 * The docs page's DOM: the document's title and description, a table of contents, one
 * section per tag with its operations (method and path, summary, parameters, request body,
 * responses), and the component schemas. Elements carry `data-testid`s
 * (`tag-<name>`, `operation-<operationId>`, `schema-<name>`) for tests and links.
 */
import { h, slug } from "./dom.js";
import { groupOperations, type OperationView, type TagGroup } from "./model.js";
import type { OpenApiDocument, Parameter, Response } from "./openapi.js";
import { renderSchema, schemaAnchor } from "./schema.js";

/** The whole page for `openapi`, replacing what `root` held. */
export function renderDocument(root: HTMLElement, openapi: OpenApiDocument): void {
  const groups = groupOperations(openapi);
  const schemas = schemasSection(openapi);
  root.replaceChildren(
    h(
      "header",
      {},
      h("h1", {}, openapi.info.title, " ", h("span", { class: "version" }, `v${openapi.info.version}`)),
      openapi.info.description === undefined ? null : h("p", {}, openapi.info.description),
      h("p", { class: "source" }, "OpenAPI ", openapi.openapi, ": ", h("a", { href: "../openapi.json" }, "openapi.json")),
    ),
    contents(groups, openapi),
    ...groups.map((group) => tagSection(openapi, group)),
    ...(schemas === null ? [] : [schemas]),
  );
}

function contents(groups: TagGroup[], openapi: OpenApiDocument): HTMLElement {
  const items = groups.map((group) =>
    h(
      "li",
      {},
      h("a", { href: `#tag-${slug(group.name)}` }, group.name),
      h(
        "ul",
        {},
        ...group.operations.map((operation) =>
          h(
            "li",
            {},
            h("a", { href: `#operation-${slug(operation.operationId)}` }, h("span", { class: `method ${operation.method}` }, operation.method.toUpperCase()), " ", operation.path),
          ),
        ),
      ),
    ),
  );
  if (Object.keys(openapi.components?.schemas ?? {}).length > 0) items.push(h("li", {}, h("a", { href: "#schemas" }, "schemas")));
  return h("nav", { class: "contents" }, h("ul", {}, ...items));
}

function tagSection(openapi: OpenApiDocument, group: TagGroup): HTMLElement {
  const id = `tag-${slug(group.name)}`;
  return h(
    "section",
    { class: "tag", id, "data-testid": id },
    h("h2", {}, group.name),
    group.description === "" ? null : h("p", {}, group.description),
    ...group.operations.map((operation) => operationSection(openapi, operation)),
  );
}

function operationSection(openapi: OpenApiDocument, operation: OperationView): HTMLElement {
  const id = `operation-${slug(operation.operationId)}`;
  const section = h(
    "section",
    { class: "operation", id, "data-testid": id },
    h(
      "h3",
      {},
      h("span", { class: `method ${operation.method}` }, operation.method.toUpperCase()),
      " ",
      h("code", { class: "path" }, operation.path),
    ),
    h("p", { class: "operation-id" }, "operationId ", h("code", {}, operation.operationId), operation.secured ? " · bearer token" : " · no token"),
  );
  if (operation.summary !== "") section.append(h("p", { class: "summary" }, operation.summary));
  if (operation.description !== "") section.append(h("p", {}, operation.description));
  if (operation.parameters.length > 0) section.append(h("h4", {}, "Parameters"), parametersTable(openapi, operation.parameters));
  if (operation.requestBody !== null) {
    section.append(h("h4", {}, operation.requestBody.required === true ? "Request body (required)" : "Request body"));
    for (const [mediaType, media] of Object.entries(operation.requestBody.content ?? {})) {
      section.append(h("div", { class: "media" }, h("code", { class: "media-type" }, mediaType), media.schema === undefined ? null : renderSchema(openapi, media.schema)));
    }
  }
  section.append(h("h4", {}, "Responses"), responsesTable(openapi, operation.responses));
  return section;
}

function parametersTable(openapi: OpenApiDocument, parameters: Parameter[]): HTMLElement {
  return h(
    "table",
    { class: "parameters" },
    h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "in"), h("th", {}, "schema"))),
    h(
      "tbody",
      {},
      ...parameters.map((parameter) =>
        h(
          "tr",
          {},
          h("td", { class: "name" }, h("code", {}, parameter.name), parameter.required === true ? h("span", { class: "required" }, " required") : null),
          h("td", {}, parameter.in),
          h(
            "td",
            {},
            parameter.schema === undefined ? null : renderSchema(openapi, parameter.schema),
            parameter.description === undefined ? null : h("p", { class: "description" }, parameter.description),
          ),
        ),
      ),
    ),
  );
}

function responsesTable(openapi: OpenApiDocument, responses: [string, Response][]): HTMLElement {
  return h(
    "table",
    { class: "responses" },
    h(
      "tbody",
      {},
      ...responses.map(([status, response]) =>
        h(
          "tr",
          { "data-status": status },
          h("td", { class: "status" }, status),
          h(
            "td",
            {},
            response.description === undefined ? null : h("p", {}, response.description),
            ...Object.entries(response.content ?? {}).map(([mediaType, media]) =>
              h("div", { class: "media" }, h("code", { class: "media-type" }, mediaType), media.schema === undefined ? null : renderSchema(openapi, media.schema)),
            ),
            ...Object.entries(response.headers ?? {}).map(([name, header]) =>
              h("p", { class: "header" }, "header ", h("code", {}, name), header.description === undefined ? "" : `: ${header.description}`),
            ),
          ),
        ),
      ),
    ),
  );
}

function schemasSection(openapi: OpenApiDocument): HTMLElement | null {
  const schemas = Object.entries(openapi.components?.schemas ?? {});
  if (schemas.length === 0) return null;
  return h(
    "section",
    { class: "schemas", id: "schemas" },
    h("h2", {}, "Schemas"),
    ...schemas.map(([name, schema]) => {
      const id = schemaAnchor(name);
      return h("section", { class: "component", id, "data-testid": id }, h("h3", {}, name), renderSchema(openapi, schema, [`#/components/schemas/${name}`]));
    }),
  );
}
