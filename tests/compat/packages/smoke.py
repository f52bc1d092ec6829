"""The wheel (`pip wheel ./bindings/python`), installed into a fresh virtualenv with no index:
`import kvrun` works and a set and get go through the embedded local vault."""

import os
import tempfile

import kvrun

assert "site-packages" in kvrun.__file__, f"kvrun came from {kvrun.__file__}, not the installed wheel"
with tempfile.TemporaryDirectory() as data_dir:
    with kvrun.Keyvault(data_dir=data_dir) as kv:
        kv.set_secret("from-the-wheel", "hunter2")
        assert kv.get_secret("from-the-wheel") == "hunter2"
        assert [p.name for p in kv.list_secrets()] == ["from-the-wheel"]
print(f"the kvrun wheel works from {os.path.dirname(kvrun.__file__)}")
