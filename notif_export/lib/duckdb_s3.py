"""DuckDB reading the bucket: httpfs from the pinned `duckdb-extension-httpfs` package (DuckDB
cannot download extensions here)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import duckdb

from notif_export.lib.bucket_access import BucketAccess
from notif_export.lib.contract import PARTITION_COLUMN_TYPE, PARTITION_COLUMNS

# read_parquet's `hive_types` for the layout's partition columns, typed as the contract says (left
# to infer, DuckDB makes `hour` a string when hours 00-09 are present).
HIVE_TYPES = "{" + ", ".join(f"'{column}': {PARTITION_COLUMN_TYPE}" for column in PARTITION_COLUMNS) + "}"


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


def s3_endpoint_options(access: BucketAccess) -> dict[str, str]:
    """How DuckDB (and dbt-duckdb) reach the bucket: region, endpoint, URL style, TLS."""
    endpoint = urlparse(access.endpoint_url) if access.endpoint_url else None
    return {
        "region": access.region_name or "",
        "endpoint": endpoint.netloc if endpoint else f"s3.{access.region_name}.amazonaws.com",
        # A custom endpoint (a local server, MinIO, SeaweedFS) is addressed by path.
        "url_style": "path" if endpoint else "vhost",
        "use_ssl": "false" if endpoint and endpoint.scheme == "http" else "true",
    }


def connect_to_bucket(con: duckdb.DuckDBPyConnection, access: BucketAccess) -> duckdb.DuckDBPyConnection:
    """Load httpfs into `con` and give it an S3 secret with the access's current credentials
    (refreshed for an assumed role); the secret lives only in this connection."""
    con.execute(f"LOAD '{httpfs_extension_file()}'")
    endpoint = s3_endpoint_options(access)
    options = [f"REGION '{endpoint['region']}'", f"ENDPOINT '{endpoint['endpoint']}'",
               f"URL_STYLE '{endpoint['url_style']}'", f"USE_SSL {endpoint['use_ssl']}"]
    credentials = access.session().get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        options += [f"KEY_ID '{frozen.access_key}'", f"SECRET '{frozen.secret_key}'"]
        if frozen.token:
            options.append(f"SESSION_TOKEN '{frozen.token}'")
    try:
        con.execute(f"CREATE OR REPLACE SECRET notif_export_bucket (TYPE s3, {', '.join(options)})")
    except duckdb.Error:  # the statement holds the keys: never let it reach a message
        raise RuntimeError("DuckDB could not take the bucket's credentials as an S3 secret") from None
    return con
