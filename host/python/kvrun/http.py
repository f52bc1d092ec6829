"""HTTP requests from a training script in the kvrun sandbox, through the host.

    import kvrun
    answer = kvrun.http.get("https://tracker.example/api/2.0/mlflow/experiments/search",
                            params={"max_results": 10}, auth=("trainer", kvrun.get_secret_handle("mlflow-password")))
    answer.raise_for_status()
    print(answer.json())

The host decides where a request may go: nowhere unless the run was given the origin
(`kvrun run --allow-http ORIGIN`) or a secret bound to it (`--use-secret NAME=ORIGIN`). A
secret's handle in a request is replaced by the value on the way out, only to the origins
(and path prefixes) the secret is bound to, and only in the places the binding allows (the
basic-auth password and headers always, the query with `,query`, the body with `,body`).
A request the host refuses raises :class:`RequestRefused` with the host's reason; nothing
was sent. Whatever a bound service sends back that carries the value comes back masked.

The standard library's `urllib.request` is not served over `wasi:http`: it is written over
sockets, which the sandbox does not give, and a second client with different semantics for
the same host policy would be one more thing to keep honest. This module is the one way out.
"""

import base64
import json as _json
import urllib.parse
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ._failures import BadHeader, Failed, Refused
from ._transport import transport as _transport

__all__ = ["Response", "HTTPError", "RequestRefused", "RequestFailed", "HTTPStatusError",
           "request", "get", "post", "put", "patch", "delete"]

Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]


class HTTPError(Exception):
    """A request did not give an answer, or (from :meth:`Response.raise_for_status`) gave an
    error status."""


class RequestRefused(HTTPError):
    """The host refused the request before sending anything: ``reason`` says why (the origin
    is not allowed for this run, a secret handle went outside its binding, a limit was
    reached)."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        super().__init__(f"the kvrun host refused {method} {_shown(url)}: {reason}")
        self.reason = reason


class RequestFailed(HTTPError):
    """The request was sent (or tried) but no whole answer came: ``code`` is the `wasi:http`
    error code (``connection-refused``, ``connection-timeout``, ``tls-certificate-error``,
    ``http-response-content-coding``, ...)."""

    def __init__(self, method: str, url: str, code: str, detail: Optional[str] = None) -> None:
        super().__init__(f"{method} {_shown(url)} failed: {code}" + (f" ({detail})" if detail else ""))
        self.code = code


class HTTPStatusError(HTTPError):
    """An answer with status 400 or above, from :meth:`Response.raise_for_status`."""

    def __init__(self, response: "Response") -> None:
        super().__init__(f"{response.method} {_shown(response.url)} answered HTTP {response.status}")
        self.response = response


class Response:
    """An answer: ``status`` (also ``status_code``), ``headers`` (names in lower case, repeated
    ones joined with ``, ``), ``content`` (bytes), ``text`` and :meth:`json`."""

    def __init__(self, method: str, url: str, status: int, header_list: List[Tuple[str, bytes]], content: bytes) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.header_list = [(name.lower(), value.decode("latin-1")) for name, value in header_list]
        headers: Dict[str, str] = {}
        for name, value in self.header_list:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        self.content = content

    @property
    def status_code(self) -> int:
        """The status, under the name `requests` uses."""
        return self.status

    @property
    def ok(self) -> bool:
        """Whether the status is below 400."""
        return self.status < 400

    @property
    def text(self) -> str:
        """The body decoded with the charset of its content type (UTF-8 when none is given)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.content)

    def raise_for_status(self) -> "Response":
        """Raises :class:`HTTPStatusError` for a status of 400 or above; else returns itself."""
        if self.status >= 400:
            raise HTTPStatusError(self)
        return self

    def __repr__(self) -> str:
        return f"<kvrun.http.Response [{self.status}]>"


def request(method: str, url: str, *, headers: Optional[Headers] = None,
            params: Optional[Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]] = None,
            json: Any = None, data: Optional[Union[bytes, str, Mapping[str, Any]]] = None,
            auth: Optional[Union[Tuple[str, str], str]] = None,
            timeout: Optional[float] = None) -> Response:
    """Sends one request and reads the whole answer.

    ``params`` are added to the URL's query; ``json`` is sent as JSON, ``data`` as it is
    (bytes or text) or form-encoded (a mapping); ``auth`` is ``(user, password)`` for basic
    auth or a token for ``Authorization: Bearer`` (either may be a secret's handle);
    ``timeout`` (seconds) bounds connecting and each wait for the answer. Redirects are not
    followed."""
    method = method.upper()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("https", "http") or not parts.netloc:
        raise ValueError(f"{_shown(url)} is not an http or https URL")
    query = parts.query
    if params:
        extra = urllib.parse.urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
        query = f"{query}&{extra}" if query else extra
    path = (parts.path or "/") + (f"?{query}" if query else "")
    full_url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))

    header_list = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    names = {name.lower() for name, _ in header_list}
    body = b""
    if json is not None:
        body = _json.dumps(json).encode()
        if "content-type" not in names:
            header_list.append(("content-type", "application/json"))
    elif isinstance(data, Mapping):
        body = urllib.parse.urlencode(list(data.items())).encode()
        if "content-type" not in names:
            header_list.append(("content-type", "application/x-www-form-urlencoded"))
    elif data is not None:
        body = data.encode() if isinstance(data, str) else bytes(data)
    if auth is not None:
        if isinstance(auth, tuple):
            user, password = auth
            header_list.append(("authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()))
        else:
            header_list.append(("authorization", f"Bearer {auth}"))
    if body:
        header_list.append(("content-length", str(len(body))))

    try:
        status, received, content = _transport.request(method, parts.scheme.lower(), parts.netloc, path,
                                                       header_list, body, timeout)
    except BadHeader as e:
        raise ValueError(f"a header of {method} {_shown(url)} cannot be sent: {e}") from None
    except Refused as e:
        raise RequestRefused(method, full_url, e.reason) from None
    except Failed as e:
        raise RequestFailed(method, full_url, e.code, e.detail) from None
    return Response(method, full_url, status, received, content)


def get(url: str, **kwargs) -> Response:
    """``request("GET", url, **kwargs)``."""
    return request("GET", url, **kwargs)


def post(url: str, **kwargs) -> Response:
    """``request("POST", url, **kwargs)``."""
    return request("POST", url, **kwargs)


def put(url: str, **kwargs) -> Response:
    """``request("PUT", url, **kwargs)``."""
    return request("PUT", url, **kwargs)


def patch(url: str, **kwargs) -> Response:
    """``request("PATCH", url, **kwargs)``."""
    return request("PATCH", url, **kwargs)


def delete(url: str, **kwargs) -> Response:
    """``request("DELETE", url, **kwargs)``."""
    return request("DELETE", url, **kwargs)


def _shown(url: str) -> str:
    """The URL without its query (which may carry a handle) and user information."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
