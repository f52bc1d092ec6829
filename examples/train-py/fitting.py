"""The example job's data and model, shared by `app.py` (written against the `training`
world) and `train.py` (an ordinary script)."""


def fit(rows: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Slope, intercept and mean squared error of the least-squares line through `rows`."""
    n = len(rows)
    mean_x = sum(x for x, _ in rows) / n
    mean_y = sum(y for _, y in rows) / n
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in rows)
    sxx = sum((x - mean_x) ** 2 for x, _ in rows)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    mse = sum((y - (slope * x + intercept)) ** 2 for x, y in rows) / n
    return slope, intercept, mse


def read_rows(path: str) -> list[tuple[float, float]]:
    """The `x,y` rows of the CSV at `path`, skipping its header and lines that do not parse."""
    rows = []
    with open(path) as f:
        for line in f.read().splitlines()[1:]:
            x, _, y = line.partition(",")
            try:
                rows.append((float(x), float(y)))
            except ValueError:
                continue
    return rows
