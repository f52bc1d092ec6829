"""An example training job in Python, built into a component for the `training` world.

The Python twin of `examples/train`: it reads the database password by name through
`kvrun:secrets/run` (the host checks the grant and masks the value in the output), builds
its connection string, and fits `y` on `x` by least squares over `/data/train.csv`
(mount it with `--dir HOST_DIR::/data:ro`).

Build and run (componentize-py from PyPI):

    componentize-py -d wit -w training componentize -p examples/train-py app -o target/train-py.wasm
    kvrun run target/train-py.wasm --secret db-password --dir examples/data::/data:ro
"""

import sys
from typing import NoReturn

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import exit as wasi_exit
from wit_world.imports import kvrun_secrets_types as types
from wit_world.imports import run

from fitting import fit, read_rows

# Exit statuses of this job, as `kvrun run` passes them on (the same as the Rust example).
EXIT_NO_SECRET = 2
EXIT_BAD_DATA = 3
DATA = "/data/train.csv"


def fail(status: int, message: str) -> NoReturn:
    """Says what went wrong on stderr and ends the run with `status`."""
    print(f"train.py: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # `SystemExit` reaches the host only as success or failure; exit-with-code keeps the status.
    wasi_exit.exit_with_code(status)
    raise SystemExit(status)  # not reached: exit-with-code ends the instance


def describe(error: types.Error) -> str:
    """The error's message, whatever its case."""
    if isinstance(error, types.Error_Service):
        service = error.value
        return f"HTTP {service.status} {service.code}: {service.message}"
    return error.value


class Run(exports.Run):
    """The component's `wasi:cli/run` export."""

    def run(self) -> None:
        name = sys.argv[1] if len(sys.argv) > 1 else "db-password"
        try:
            password = run.get_secret(name)
        except Err as e:
            fail(EXIT_NO_SECRET, f"could not read secret {name!r}: {describe(e.value)}")
        print(f"train.py: connecting to postgres://trainer:{password}@db.internal:5432/experiments")

        try:
            rows = read_rows(DATA)
        except OSError as e:
            fail(EXIT_BAD_DATA, f"cannot read {DATA} ({e}); mount data with --dir HOST_DIR::/data:ro")
        if len(rows) < 2:
            fail(EXIT_BAD_DATA, f"{DATA} needs a header and at least two x,y rows")
        slope, intercept, mse = fit(rows)
        print(f"train.py: fitted y = {slope:.4f} * x + {intercept:.4f} on {len(rows)} rows (mse {mse:.4f})")
