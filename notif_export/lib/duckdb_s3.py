"""DuckDB reading the bucket: httpfs from the pinned `duckdb-extension-httpfs` package (DuckDB
cannot download extensions here) and an S3 secret from the same settings as the export."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

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


def s3_secret_sql(endpoint_url: str | None, region: str, key_id: str | None, secret: str | None,
                  session_token: str | None = None) -> str:
    """A CREATE SECRET statement for the bucket's endpoint (path-style for a local server)."""
    options = ["TYPE s3", f"REGION '{region}'"]
    if endpoint_url:
        parsed = urlparse(endpoint_url)
        options += [f"ENDPOINT '{parsed.netloc}'", "URL_STYLE 'path'",
                    f"USE_SSL {'true' if parsed.scheme == 'https' else 'false'}"]
    if key_id and secret:
        options += [f"KEY_ID '{key_id}'", f"SECRET '{secret}'"]
        if session_token:
            options.append(f"SESSION_TOKEN '{session_token}'")
    else:
        options.append("PROVIDER credential_chain")
    return f"CREATE OR REPLACE SECRET notif_export_s3 ({', '.join(options)})"
