"""The transport of kvrun's scientific Python runtime: kvrun's door protocol over the
module's one host import (the built-in `_host` module). The host's side, and the protocol,
are documented in `host/src/scientific/door.rs`."""

import base64
import json

import _host

from ._failures import BadHeader, Failed, Refused, SecretFailure


def call(frame: dict):
    """Sends one frame; returns its `ok` value, or raises the error the host answered."""
    answer = json.loads(_host.call(json.dumps(frame).encode()))
    if "ok" in answer:
        return answer["ok"]
    error = answer.get("error") or {}
    kind, message = error.get("kind", "error"), error.get("message", "the host answered an error")
    if kind == "refused":
        raise Refused(message)
    if kind == "failed":
        code, _, detail = message.partition(": ")
        raise Failed(code, detail or None)
    if kind == "bad-header":
        raise BadHeader(message)
    raise SecretFailure(kind, message)


def get_secret(name: str) -> str:
    return call({"op": "get-secret", "name": name})


def get_secret_handle(name: str) -> str:
    return call({"op": "get-secret-handle", "name": name})


def get_secrets(names: list) -> list:
    return call({"op": "get-secrets", "names": list(names)})


def request(method: str, scheme: str, authority: str, path: str, header_list: list, body: bytes,
            timeout):
    """Sends one request through the host; returns (status, [(name, value bytes)], content)."""
    headers = [(name, value if isinstance(value, str) else bytes(value).decode("latin-1"))
               for name, value in header_list]
    answer = call({"op": "http", "method": method, "url": f"{scheme}://{authority}{path}",
                   "headers": headers, "body": base64.b64encode(body).decode(), "timeout": timeout})
    received = [(name, value.encode("latin-1")) for name, value in answer["headers"]]
    return answer["status"], received, base64.b64decode(answer["body"])
