"""HTTP requests from a training script in the kvrun sandbox, over `wasi:http`.

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

from componentize_py_types import Err
from wit_world.imports import egress as _egress
from wit_world.imports import outgoing_handler as _handler
from wit_world.imports import streams as _streams
from wit_world.imports import wasi_http_types as _http

__all__ = ["Response", "HTTPError", "RequestRefused", "RequestFailed", "HTTPStatusError",
           "request", "get", "post", "put", "patch", "delete"]

Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
_CHUNK = 4096
_READ = 64 * 1024


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
    scheme = {"https": _http.Scheme_Https(), "http": _http.Scheme_Http()}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
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
        fields = _http.Fields.from_list([(name, value.encode() if isinstance(value, str) else bytes(value))
                                         for name, value in header_list])
    except Err as e:
        raise ValueError(f"a header of {method} {_shown(url)} cannot be sent: {_header_error(e.value)}") from None
    outgoing = _http.OutgoingRequest(fields)
    outgoing.set_method(_method(method))
    outgoing.set_scheme(scheme)
    outgoing.set_authority(parts.netloc)
    try:
        outgoing.set_path_with_query(path)
    except Err:
        raise ValueError(f"{_shown(url)} has a path the request cannot carry") from None
    options = None
    if timeout is not None:
        options = _http.RequestOptions()
        nanoseconds = max(1, int(timeout * 1e9))
        options.set_connect_timeout(nanoseconds)
        options.set_first_byte_timeout(nanoseconds)
        options.set_between_bytes_timeout(nanoseconds)

    request_body = outgoing.body()
    try:
        future = _handler.handle(outgoing, options)
    except Err as e:
        request_body.__exit__(None, None, None)
        raise _failure(method, full_url, e.value) from None
    with request_body.write() as stream:
        for start in range(0, len(body), _CHUNK):
            try:
                stream.blocking_write_and_flush(body[start:start + _CHUNK])
            except Err:
                break
    try:
        _http.OutgoingBody.finish(request_body, None)
    except Err as e:
        raise _failure(method, full_url, e.value) from None
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if outcome is None or isinstance(outcome, Err):
        raise RequestFailed(method, full_url, "no-answer")
    answer = outcome.value
    if isinstance(answer, Err):
        raise _failure(method, full_url, answer.value)
    with answer.value as response:
        status = response.status()
        with response.headers() as fields:
            received = fields.entries()
        incoming = response.consume()
    content = bytearray()
    with incoming.stream() as stream:
        while True:
            try:
                content += stream.blocking_read(_READ)
            except Err as e:
                if isinstance(e.value, _streams.StreamError_Closed):
                    break
                raise RequestFailed(method, full_url, "the answer broke off") from None
    _http.IncomingBody.finish(incoming).__exit__(None, None, None)
    return Response(method, full_url, status, received, bytes(content))


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


_METHODS = {"GET": _http.Method_Get, "HEAD": _http.Method_Head, "POST": _http.Method_Post,
            "PUT": _http.Method_Put, "DELETE": _http.Method_Delete, "CONNECT": _http.Method_Connect,
            "OPTIONS": _http.Method_Options, "TRACE": _http.Method_Trace, "PATCH": _http.Method_Patch}


def _method(method: str):
    known = _METHODS.get(method)
    return known() if known else _http.Method_Other(method)


def _failure(method: str, url: str, code) -> HTTPError:
    """The exception for a `wasi:http` error code: a refusal with the host's reason, or a
    failure named by its code."""
    if isinstance(code, _http.ErrorCode_HttpRequestDenied):
        reason = _egress.last_refusal() or "the run's network policy does not allow it"
        return RequestRefused(method, url, reason)
    name = type(code).__name__.removeprefix("ErrorCode_")
    kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")
    detail = getattr(code, "value", None)
    return RequestFailed(method, url, kebab, detail if isinstance(detail, str) else None)


def _header_error(error) -> str:
    if isinstance(error, _http.HeaderError_Forbidden):
        return "the host does not let a run set it"
    return "it is not a valid header name or value"


def _shown(url: str) -> str:
    """The URL without its query (which may carry a handle) and user information."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
