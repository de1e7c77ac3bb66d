// docs-page/src/dom.ts
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === void 0 || child === false) continue;
    element.append(child);
  }
  return element;
}
function slug(text) {
  return text.replace(/[^A-Za-z0-9_.-]+/g, "-");
}

// docs-page/src/openapi.ts
var METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
var UnresolvedReference = class extends Error {
  constructor(ref) {
    super(`cannot resolve ${ref}`);
    this.ref = ref;
    this.name = "UnresolvedReference";
  }
  ref;
};
function isReference(value) {
  return typeof value === "object" && value !== null && typeof value.$ref === "string";
}
function resolvePointer(document2, ref) {
  if (!ref.startsWith("#/")) throw new UnresolvedReference(ref);
  let node = document2;
  for (const raw of ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    if (typeof node !== "object" || node === null || !Object.hasOwn(node, key)) throw new UnresolvedReference(ref);
    node = node[key];
  }
  return node;
}
function deref(document2, value) {
  const seen = /* @__PURE__ */ new Set();
  let current = value;
  while (isReference(current)) {
    if (seen.has(current.$ref)) throw new UnresolvedReference(current.$ref);
    seen.add(current.$ref);
    current = resolvePointer(document2, current.$ref);
  }
  return current;
}
function schemaName(ref) {
  const prefix = "#/components/schemas/";
  return ref.startsWith(prefix) ? ref.slice(prefix.length) : null;
}

// docs-page/src/model.ts
var UNTAGGED = "other";
function groupOperations(document2) {
  const groups = /* @__PURE__ */ new Map();
  for (const tag of document2.tags ?? []) {
    groups.set(tag.name, { name: tag.name, description: tag.description ?? "", operations: [] });
  }
  for (const [path, item] of Object.entries(document2.paths)) {
    const shared = item.parameters ?? [];
    for (const method of METHODS) {
      const operation = item[method];
      if (operation === void 0) continue;
      const view = operationView(document2, method, path, operation, shared ?? []);
      const tag = operation.tags?.[0] ?? UNTAGGED;
      let group = groups.get(tag);
      if (group === void 0) {
        group = { name: tag, description: "", operations: [] };
        groups.set(tag, group);
      }
      group.operations.push(view);
    }
  }
  return [...groups.values()].filter((group) => group.operations.length > 0);
}
function operationView(document2, method, path, operation, shared) {
  const parameters = /* @__PURE__ */ new Map();
  for (const raw of [...shared, ...operation.parameters ?? []]) {
    const parameter = deref(document2, raw);
    parameters.set(`${parameter.in}:${parameter.name.toLowerCase()}`, parameter);
  }
  const responses = Object.entries(operation.responses ?? {}).map(([status, raw]) => [status, deref(document2, raw)]).sort(([a], [b]) => a.localeCompare(b));
  return {
    method,
    path,
    operationId: operation.operationId ?? `${method} ${path}`,
    summary: operation.summary ?? "",
    description: operation.description ?? "",
    parameters: [...parameters.values()],
    requestBody: operation.requestBody === void 0 ? null : deref(document2, operation.requestBody),
    responses,
    secured: (operation.security ?? document2.security ?? []).length > 0
  };
}

// docs-page/src/schema.ts
function schemaAnchor(name) {
  return `schema-${slug(name)}`;
}
function typeLabel(schema) {
  if (schema.$ref !== void 0) return schemaName(schema.$ref) ?? schema.$ref;
  if (schema.const !== void 0) return JSON.stringify(schema.const);
  if (schema.enum !== void 0) return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  if (schema.oneOf !== void 0) return schema.oneOf.map(typeLabel).join(" | ");
  if (schema.anyOf !== void 0) return schema.anyOf.map(typeLabel).join(" | ");
  if (schema.allOf !== void 0) return schema.allOf.map(typeLabel).join(" & ");
  const types = schema.type === void 0 ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
  const named = types.map((type) => type === "array" && schema.items !== void 0 ? `array of ${typeLabel(schema.items)}` : type);
  if (named.length === 0) return schema.properties !== void 0 ? "object" : "any";
  return named.join(" | ");
}
function constraints(schema) {
  const notes = [];
  if (schema.format !== void 0) notes.push(`format ${schema.format}`);
  if (schema.minimum !== void 0) notes.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== void 0) notes.push(`≤ ${schema.maximum}`);
  if (schema.minLength !== void 0) notes.push(`length ≥ ${schema.minLength}`);
  if (schema.maxLength !== void 0) notes.push(`length ≤ ${schema.maxLength}`);
  if (schema.minItems !== void 0) notes.push(`items ≥ ${schema.minItems}`);
  if (schema.pattern !== void 0) notes.push(`pattern ${schema.pattern}`);
  if (schema.not?.const !== void 0) notes.push(`not ${JSON.stringify(schema.not.const)}`);
  if (schema.default !== void 0) notes.push(`default ${JSON.stringify(schema.default)}`);
  if (schema.additionalProperties === false) notes.push("no other properties");
  return notes;
}
function refLink(ref) {
  const name = schemaName(ref);
  return name === null ? document.createTextNode(ref) : h("a", { href: `#${schemaAnchor(name)}` }, name);
}
function typeLine(schema) {
  const line = h("span", { class: "type" });
  if (schema.$ref !== void 0) line.append(refLink(schema.$ref));
  else if (schema.type === "array" && schema.items?.$ref !== void 0) line.append("array of ", refLink(schema.items.$ref));
  else line.append(typeLabel(schema));
  const notes = constraints(schema);
  if (notes.length > 0) line.append(h("span", { class: "constraints" }, ` (${notes.join(", ")})`));
  return line;
}
function renderSchema(openapi, schema, open = []) {
  const block = h("div", { class: "schema" }, typeLine(schema));
  if (schema.description !== void 0) block.append(h("p", { class: "description" }, schema.description));
  const body = schemaBody(openapi, schema, open);
  if (body !== null) block.append(body);
  return block;
}
function schemaBody(openapi, schema, open) {
  if (schema.$ref !== void 0) {
    if (open.includes(schema.$ref)) return null;
    const target = resolvePointer(openapi, schema.$ref);
    const inner = schemaBody(openapi, target, [...open, schema.$ref]);
    if (inner === null) return null;
    return h("details", { class: "expansion" }, h("summary", {}, `${typeLabel(schema)}: ${typeLabel(target)}`), inner);
  }
  if (schema.properties !== void 0) return propertiesTable(openapi, schema, open);
  if (schema.items !== void 0) {
    const inner = schemaBody(openapi, schema.items, open);
    return inner === null ? null : h("div", { class: "items" }, inner);
  }
  if (typeof schema.additionalProperties === "object") {
    return h("div", { class: "items" }, "each value: ", renderSchema(openapi, schema.additionalProperties, open));
  }
  return null;
}
function propertiesTable(openapi, schema, open) {
  const required = new Set(schema.required ?? []);
  const rows = Object.entries(schema.properties ?? {}).map(
    ([name, property]) => h(
      "tr",
      {},
      h("td", { class: "name" }, h("code", {}, name), required.has(name) ? h("span", { class: "required" }, " required") : null),
      h("td", {}, renderSchema(openapi, property, open))
    )
  );
  return h("table", { class: "properties" }, h("tbody", {}, ...rows));
}

// docs-page/src/render.ts
function renderDocument(root, openapi) {
  const groups = groupOperations(openapi);
  const schemas = schemasSection(openapi);
  root.replaceChildren(
    h(
      "header",
      {},
      h("h1", {}, openapi.info.title, " ", h("span", { class: "version" }, `v${openapi.info.version}`)),
      openapi.info.description === void 0 ? null : h("p", {}, openapi.info.description),
      h("p", { class: "source" }, "OpenAPI ", openapi.openapi, ": ", h("a", { href: "../openapi.json" }, "openapi.json"))
    ),
    contents(groups, openapi),
    ...groups.map((group) => tagSection(openapi, group)),
    ...schemas === null ? [] : [schemas]
  );
}
function contents(groups, openapi) {
  const items = groups.map(
    (group) => h(
      "li",
      {},
      h("a", { href: `#tag-${slug(group.name)}` }, group.name),
      h(
        "ul",
        {},
        ...group.operations.map(
          (operation) => h(
            "li",
            {},
            h("a", { href: `#operation-${slug(operation.operationId)}` }, h("span", { class: `method ${operation.method}` }, operation.method.toUpperCase()), " ", operation.path)
          )
        )
      )
    )
  );
  if (Object.keys(openapi.components?.schemas ?? {}).length > 0) items.push(h("li", {}, h("a", { href: "#schemas" }, "schemas")));
  return h("nav", { class: "contents" }, h("ul", {}, ...items));
}
function tagSection(openapi, group) {
  const id = `tag-${slug(group.name)}`;
  return h(
    "section",
    { class: "tag", id, "data-testid": id },
    h("h2", {}, group.name),
    group.description === "" ? null : h("p", {}, group.description),
    ...group.operations.map((operation) => operationSection(openapi, operation))
  );
}
function operationSection(openapi, operation) {
  const id = `operation-${slug(operation.operationId)}`;
  const section = h(
    "section",
    { class: "operation", id, "data-testid": id },
    h(
      "h3",
      {},
      h("span", { class: `method ${operation.method}` }, operation.method.toUpperCase()),
      " ",
      h("code", { class: "path" }, operation.path)
    ),
    h("p", { class: "operation-id" }, "operationId ", h("code", {}, operation.operationId), operation.secured ? " · bearer token" : " · no token")
  );
  if (operation.summary !== "") section.append(h("p", { class: "summary" }, operation.summary));
  if (operation.description !== "") section.append(h("p", {}, operation.description));
  if (operation.parameters.length > 0) section.append(h("h4", {}, "Parameters"), parametersTable(openapi, operation.parameters));
  if (operation.requestBody !== null) {
    section.append(h("h4", {}, operation.requestBody.required === true ? "Request body (required)" : "Request body"));
    for (const [mediaType, media] of Object.entries(operation.requestBody.content ?? {})) {
      section.append(h("div", { class: "media" }, h("code", { class: "media-type" }, mediaType), media.schema === void 0 ? null : renderSchema(openapi, media.schema)));
    }
  }
  section.append(h("h4", {}, "Responses"), responsesTable(openapi, operation.responses));
  return section;
}
function parametersTable(openapi, parameters) {
  return h(
    "table",
    { class: "parameters" },
    h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "in"), h("th", {}, "schema"))),
    h(
      "tbody",
      {},
      ...parameters.map(
        (parameter) => h(
          "tr",
          {},
          h("td", { class: "name" }, h("code", {}, parameter.name), parameter.required === true ? h("span", { class: "required" }, " required") : null),
          h("td", {}, parameter.in),
          h(
            "td",
            {},
            parameter.schema === void 0 ? null : renderSchema(openapi, parameter.schema),
            parameter.description === void 0 ? null : h("p", { class: "description" }, parameter.description)
          )
        )
      )
    )
  );
}
function responsesTable(openapi, responses) {
  return h(
    "table",
    { class: "responses" },
    h(
      "tbody",
      {},
      ...responses.map(
        ([status, response]) => h(
          "tr",
          { "data-status": status },
          h("td", { class: "status" }, status),
          h(
            "td",
            {},
            response.description === void 0 ? null : h("p", {}, response.description),
            ...Object.entries(response.content ?? {}).map(
              ([mediaType, media]) => h("div", { class: "media" }, h("code", { class: "media-type" }, mediaType), media.schema === void 0 ? null : renderSchema(openapi, media.schema))
            ),
            ...Object.entries(response.headers ?? {}).map(
              ([name, header]) => h("p", { class: "header" }, "header ", h("code", {}, name), header.description === void 0 ? "" : `: ${header.description}`)
            )
          )
        )
      )
    )
  );
}
function schemasSection(openapi) {
  const schemas = Object.entries(openapi.components?.schemas ?? {});
  if (schemas.length === 0) return null;
  return h(
    "section",
    { class: "schemas", id: "schemas" },
    h("h2", {}, "Schemas"),
    ...schemas.map(([name, schema]) => {
      const id = schemaAnchor(name);
      return h("section", { class: "component", id, "data-testid": id }, h("h3", {}, name), renderSchema(openapi, schema, [`#/components/schemas/${name}`]));
    })
  );
}

// docs-page/src/main.ts
async function start() {
  const root = document.getElementById("docs");
  if (root === null) return;
  const spec = new URL(root.dataset["spec"] ?? "../openapi.json", document.baseURI);
  try {
    const response = await fetch(spec, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${spec.pathname} answered ${response.status}`);
    renderDocument(root, await response.json());
    root.dataset["state"] = "ready";
    if (location.hash.length > 1) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.scrollIntoView();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const failure = document.createElement("p");
    failure.className = "failure";
    failure.dataset["testid"] = "docs-failure";
    failure.textContent = `The API description could not be shown: ${message}`;
    root.replaceChildren(failure);
    root.dataset["state"] = "failed";
  }
}
void start();
