"""/docs: the OpenAPI document rendered on the server as one HTML page, no script, no CDN."""

from __future__ import annotations

import base64
import hashlib
import re
from html import escape
from typing import Any

METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:1rem 1.5rem;
color:#1d1d1f;background:#fff}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;margin-top:2.5rem}
code{font:13px ui-monospace,monospace;background:#f2f2f4;padding:0 .25em;border-radius:3px}
details{border:1px solid #ddd;border-radius:6px;margin:.4rem 0;padding:.3rem .7rem}
summary{cursor:pointer}summary code{background:none}
.m{display:inline-block;min-width:4.2rem;font:600 12px ui-monospace,monospace;
text-transform:uppercase}
.get{color:#0b6e2e}.post{color:#8a4b00}.delete{color:#b00020}.put,.patch{color:#5b2a86}
.head,.options{color:#555}
table{border-collapse:collapse;width:100%;margin:.4rem 0}
td,th{border-bottom:1px solid #eee;padding:.2rem .4rem;text-align:left;vertical-align:top}
th{font-weight:600;font-size:13px;color:#555}.req{color:#b00020}
nav a{margin-right:1rem}
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}
code{background:#2a2a2e}details,td,th,h2{border-color:#333}}
"""
# The page's CSP allows exactly this inline style, by its hash.
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CODE = re.compile(r"`([^`]+)`")


def inline(value: str) -> str:
    return CODE.sub(r"<code>\1</code>", escape(value))


def text(value: str | None) -> str:
    """Escaped prose, with the spec's `code` spans and blank-line paragraphs kept."""
    if not value:
        return ""
    paragraphs = [p.strip() for p in value.split("\n\n") if p.strip()]
    return "".join(f"<p>{inline(p)}</p>" for p in paragraphs)


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def resolve(spec: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref (#/components/...) to what it names."""
    while "$ref" in item:
        node: Any = spec
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def type_label(schema: dict[str, Any] | None) -> str:
    """A short, linked description of a schema: `MediaId`, `string | null`, `array of …`."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = escape(ref_name(schema["$ref"]))
        return f'<a href="#schema-{name}">{name}</a>'
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        return " | ".join(type_label(part) for part in alternatives)
    if "allOf" in schema:
        return " &amp; ".join(type_label(part) for part in schema["allOf"] if part.get("$ref"))
    if "const" in schema:
        return f"<code>{escape(str(schema['const']))}</code>"
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
    kind = schema.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    label = " | ".join(escape(k) for k in kinds) or escape(schema.get("contentMediaType", "any"))
    if "array" in kinds and "items" in schema:
        label = label.replace("array", "array of " + type_label(schema["items"]), 1)
    return label


def constraints(schema: dict[str, Any]) -> str:
    names = ("pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems")
    parts = [f"{n}: <code>{escape(str(schema[n]))}</code>" for n in names if n in schema]
    if "default" in schema:
        parts.append(f"default: <code>{escape(str(schema['default']))}</code>")
    if "format" in schema:
        parts.append(f"format: {escape(schema['format'])}")
    return "; ".join(parts)


def schema_table(schema: dict[str, Any]) -> str:
    properties: dict[str, Any] = {}
    required: set[str] = set(schema.get("required", []))
    for part in [schema, *schema.get("allOf", [])]:
        properties.update(part.get("properties", {}))
        required |= set(part.get("required", []))
    if not properties:
        return ""
    rows = [
        f"<tr><td><code>{escape(name)}</code>{' <span class=req>*</span>' * (name in required)}"
        f"</td><td>{type_label(prop)}</td><td>{constraints(prop)}{text(prop.get('description'))}"
        "</td></tr>"
        for name, prop in properties.items()
    ]
    head = "<tr><th>field</th><th>type</th><th>notes</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def parameters_table(spec: dict[str, Any], params: list[dict[str, Any]]) -> str:
    if not params:
        return ""
    rows = []
    for raw in params:
        param = resolve(spec, raw)
        star = " <span class=req>*</span>" if param.get("required") else ""
        rows.append(
            f"<tr><td><code>{escape(param['name'])}</code>{star}</td><td>{escape(param['in'])}"
            f"</td><td>{type_label(param.get('schema'))}</td><td>"
            f"{constraints(resolve(spec, param.get('schema', {})))}"
            f"{text(param.get('description'))}</td></tr>"
        )
    head = "<tr><th>parameter</th><th>in</th><th>type</th><th>notes</th></tr>"
    return f"<h4>Parameters</h4><table>{head}{''.join(rows)}</table>"


def codes(schema: dict[str, Any]) -> str:
    """The problem codes a response narrows `Problem` to (its allOf's `code` enum)."""
    found = [
        value
        for part in schema.get("allOf", [])
        for value in part.get("properties", {}).get("code", {}).get("enum", [])
    ]
    return (" code " + ", ".join(f"<code>{escape(c)}</code>" for c in found)) if found else ""


def content_list(content: dict[str, Any] | None) -> str:
    if not content:
        return ""
    items = []
    for media, body in content.items():
        schema = body.get("schema", {})
        items.append(f"<code>{escape(media)}</code> {type_label(schema)}{codes(schema)}")
        if "properties" in schema:  # an inline schema (multipart parts) has no page of its own
            items.append(schema_table(schema))
    return "<br>".join(items)


def responses_table(spec: dict[str, Any], responses: dict[str, Any]) -> str:
    rows = []
    for status, raw in responses.items():
        response = resolve(spec, raw)
        headers = ", ".join(f"<code>{escape(h)}</code>" for h in response.get("headers", {}))
        rows.append(
            f"<tr><td><code>{escape(str(status))}</code></td><td>"
            f"{text(response.get('description'))}</td><td>{content_list(response.get('content'))}"
            f"</td><td>{headers}</td></tr>"
        )
    head = "<tr><th>status</th><th>meaning</th><th>body</th><th>headers</th></tr>"
    return f"<h4>Responses</h4><table>{head}{''.join(rows)}</table>"


def credentials(op: dict[str, Any]) -> str:
    if "security" not in op:  # webhooks: the signature headers are the credential
        return ""
    names = [name for requirement in op.get("security", []) for name in requirement]
    links = [f'<a href="#auth-{escape(n)}">{escape(n)}</a>' for n in names]
    if {} in op.get("security", []) or not names:
        links.insert(0, "none")
    return f"<p>Credentials: {', '.join(links)}</p>"


def operation(
    spec: dict[str, Any], path: str, method: str, op: dict[str, Any], shared: list[Any]
) -> str:
    request = ""
    if "requestBody" in op:
        body = resolve(spec, op["requestBody"])
        request = f"<h4>Request body</h4><div>{content_list(body.get('content'))}</div>"
    anchor = escape(op.get("operationId", f"{method}-{path}"))
    return (
        f'<details id="op-{anchor}"><summary><span class="m {method}">{method}</span> '
        f"<code>{escape(path)}</code> — {inline(op.get('summary', ''))}</summary>"
        + text(op.get("description"))
        + credentials(op)
        + parameters_table(spec, [*shared, *op.get("parameters", [])])
        + request
        + responses_table(spec, op.get("responses", {}))
        + "</details>"
    )


def operations_by_tag(spec: dict[str, Any], items: dict[str, Any]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for path, item in items.items():
        for method in METHODS:
            if method in item:
                op = item[method]
                tag = (op.get("tags") or ["other"])[0]
                html = operation(spec, path, method, op, item.get("parameters", []))
                grouped.setdefault(tag, []).append(html)
    return grouped


def render_docs(spec: dict[str, Any]) -> str:
    info = spec["info"]
    tags = {t["name"]: t.get("description", "") for t in spec.get("tags", [])}
    parts = [
        f"<h1>{escape(info['title'])} API</h1><p>Version {escape(info['version'])} · OpenAPI "
        f'{escape(spec["openapi"])} · <a href="/openapi.json">/openapi.json</a></p>',
        text(info.get("description")),
        '<nav><a href="#operations">Operations</a><a href="#auth">Credentials</a>'
        '<a href="#webhooks">Webhooks</a><a href="#schemas">Schemas</a></nav>',
        '<h2 id="operations">Operations</h2>',
    ]
    for tag, ops in operations_by_tag(spec, spec["paths"]).items():
        parts.append(f"<h3>{escape(tag)}</h3>{text(tags.get(tag))}{''.join(ops)}")
    parts.append('<h2 id="auth">Credentials</h2><table>')
    for name, scheme in spec["components"]["securitySchemes"].items():
        where = scheme.get("scheme") or f"{scheme.get('in')}: {scheme.get('name')}"
        parts.append(
            f'<tr id="auth-{escape(name)}"><td><code>{escape(name)}</code></td>'
            f"<td>{escape(scheme['type'])} <code>{escape(where)}</code></td>"
            f"<td>{text(scheme.get('description'))}</td></tr>"
        )
    parts.append('</table><h2 id="webhooks">Webhooks</h2>')
    parts.append(
        "<p>Events go to the tenant's HTTPS endpoints as signed POSTs (Standard Webhooks), and "
        "to <code>GET /v1/events</code> as Server-Sent Events, with the same envelope.</p>"
    )
    for ops in operations_by_tag(spec, spec.get("webhooks", {})).values():
        parts.extend(ops)
    parts.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in spec["components"]["schemas"].items():
        parts.append(
            f'<details id="schema-{escape(name)}"><summary><code>{escape(name)}</code> '
            f"{type_label(schema)}"
            f"</summary>{text(schema.get('description'))}{constraints(schema)}"
            f"{schema_table(schema)}</details>"
        )
    body = "".join(parts)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(info['title'])} API</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
