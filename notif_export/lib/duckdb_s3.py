"""DuckDB reading the bucket: httpfs from the pinned `duckdb-extension-httpfs` package (DuckDB
cannot download extensions here)."""

from __future__ import annotations

from pathlib import Path

import duckdb


def httpfs_extension_file() -> Path:
    import duckdb_extension_httpfs

    version = duckdb.__version__
    path = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{version}" / "httpfs.duckdb_extension"
    if not path.exists():
        raise RuntimeError(
            f"no httpfs extension for DuckDB {version} at {path}; install duckdb-extension-httpfs=={version}"
        )
    return path


def install_httpfs(extension_dir: Path) -> None:
    """Put httpfs into `extension_dir`, where DuckDB (and dbt-duckdb) load it from."""
    con = duckdb.connect(config={"extension_directory": str(extension_dir)})
    con.execute(f"INSTALL '{httpfs_extension_file()}'")
    con.close()
