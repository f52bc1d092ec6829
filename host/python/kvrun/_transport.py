"""The transport of the runtime this module runs in: the scientific runtime's door (its
built-in `_host` module), else the component's imports."""

try:
    import _host  # noqa: F401  (only the scientific runtime has it)
except ImportError:
    from . import _component as transport
else:
    from . import _door as transport

__all__ = ["transport"]
