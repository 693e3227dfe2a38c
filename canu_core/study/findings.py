"""What this lab found: the committed claims tables, read back for the notebooks' closing cells.

The notebooks teach the paper's method; their last cell shows which of the paper's claims the committed study
supports, so that no markdown cell has to restate a number that the results could later contradict."""

from pathlib import Path

import pandas as pd

from ..runs import project_root

CLAIMS_TABLES = {
    "Table IV study (default world)": Path("docs/study/tables/claims.csv"),
    "fashion study (camera-dependent clothing)": Path("docs/study/fashion/tables/claims.csv"),
    "fashion study at each arm's chosen mu": Path("docs/study/fashion/best_mu/tables/claims.csv"),
}
SHOWN = ["study", "claim", "difference", "95% CI", "unit", "verdict"]


def lab_findings(about: str | None = None, root: Path | None = None) -> pd.DataFrame:
    """The committed claims, one row per claim with its difference, interval, unit of analysis and verdict; `about`
    keeps the claims whose text or comparison mentions it (case-insensitive, e.g. "CANU" or "pseudo-labels")."""
    root = project_root() if root is None else Path(root)
    tables = []
    for study, relative in CLAIMS_TABLES.items():
        path = root / relative
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the committed claims table is missing (expected it in the repository)")
        tables.append(pd.read_csv(path, dtype=str).assign(study=study))
    claims = pd.concat(tables, ignore_index=True)
    if about is not None:
        text = claims["claim"] + " " + claims["comparison"]
        claims = claims[text.str.contains(about, case=False, regex=False)]
    return claims[SHOWN].reset_index(drop=True)
