"""The transport of kvrun's standard Python runtime: the component's own imports
(`kvrun:secrets/run` and `wasi:http`), as componentize-py binds them."""

from componentize_py_types import Err
from wit_world.imports import egress as _egress
from wit_world.imports import kvrun_secrets_types as _types
from wit_world.imports import outgoing_handler as _handler
from wit_world.imports import run as _run
from wit_world.imports import streams as _streams
from wit_world.imports import wasi_http_types as _http

from ._failures import BadHeader, Failed, Refused, SecretFailure

_CHUNK = 4096
_READ = 64 * 1024

_KINDS = {
    _types.Error_NotFound: "not-found",
    _types.Error_Denied: "denied",
    _types.Error_Conflict: "conflict",
    _types.Error_Unauthenticated: "unauthenticated",
    _types.Error_InvalidName: "invalid-name",
    _types.Error_InvalidArgument: "invalid-argument",
    _types.Error_Unavailable: "unavailable",
    _types.Error_Transport: "transport",
}


def _secret_failure(err: Err) -> SecretFailure:
    error = err.value
    if isinstance(error, _types.Error_Service):
        return SecretFailure("service", f"HTTP {error.value.status} {error.value.code}: {error.value.message}")
    return SecretFailure(_KINDS.get(type(error), "error"), str(error.value))


def get_secret(name: str) -> str:
    try:
        return _run.get_secret(name)
    except Err as e:
        raise _secret_failure(e) from None


def get_secret_handle(name: str) -> str:
    try:
        return _run.get_secret_handle(name)
    except Err as e:
        raise _secret_failure(e) from None


def get_secrets(names: list) -> list:
    try:
        return _run.get_secrets(names)
    except Err as e:
        raise _secret_failure(e) from None


_METHODS = {"GET": _http.Method_Get, "HEAD": _http.Method_Head, "POST": _http.Method_Post,
            "PUT": _http.Method_Put, "DELETE": _http.Method_Delete, "CONNECT": _http.Method_Connect,
            "OPTIONS": _http.Method_Options, "TRACE": _http.Method_Trace, "PATCH": _http.Method_Patch}


def _method(method: str):
    known = _METHODS.get(method)
    return known() if known else _http.Method_Other(method)


def _failure(code) -> Exception:
    """The exception for a `wasi:http` error code: a refusal with the host's reason, or a
    failure named by its code."""
    if isinstance(code, _http.ErrorCode_HttpRequestDenied):
        return Refused(_egress.last_refusal() or "the run's network policy does not allow it")
    name = type(code).__name__.removeprefix("ErrorCode_")
    kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")
    detail = getattr(code, "value", None)
    return Failed(kebab, detail if isinstance(detail, str) else None)


def request(method: str, scheme: str, authority: str, path: str, header_list: list, body: bytes,
            timeout):
    """Sends one request over `wasi:http`; returns (status, [(name, value bytes)], content)."""
    try:
        fields = _http.Fields.from_list([(name, value.encode() if isinstance(value, str) else bytes(value))
                                         for name, value in header_list])
    except Err as e:
        if isinstance(e.value, _http.HeaderError_Forbidden):
            raise BadHeader("the host does not let a run set it") from None
        raise BadHeader("it is not a valid header name or value") from None
    outgoing = _http.OutgoingRequest(fields)
    outgoing.set_method(_method(method))
    outgoing.set_scheme(_http.Scheme_Https() if scheme == "https" else _http.Scheme_Http())
    outgoing.set_authority(authority)
    try:
        outgoing.set_path_with_query(path)
    except Err:
        raise ValueError("the URL has a path the request cannot carry") from None
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
        raise _failure(e.value) from None
    with request_body.write() as stream:
        for start in range(0, len(body), _CHUNK):
            try:
                stream.blocking_write_and_flush(body[start:start + _CHUNK])
            except Err:
                break
    try:
        _http.OutgoingBody.finish(request_body, None)
    except Err as e:
        raise _failure(e.value) from None
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if outcome is None or isinstance(outcome, Err):
        raise Failed("no-answer")
    answer = outcome.value
    if isinstance(answer, Err):
        raise _failure(answer.value)
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
                raise Failed("the answer broke off") from None
    _http.IncomingBody.finish(incoming).__exit__(None, None, None)
    return status, received, bytes(content)
