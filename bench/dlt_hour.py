"""The peer: dlt's `sql_table` (connectorx backend) -> filesystem destination on S3, Parquet, one
hour of `messages` limited to the contract's columns. Run by `export_hour.py --with-dlt` with the
Python of dlt's own environment (dlt pins an older boto3 than notif_export's); prints one JSON line.

    <dlt venv>/bin/python bench/dlt_hour.py '{"pg": ..., "start": ..., "end": ..., "endpoint": ..., ...}'
"""

import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    params = json.loads(sys.argv[1])
    import dlt
    import sqlalchemy as sa
    from dlt.sources.sql_database import sql_table

    started = time.perf_counter()  # as notif_export's figure: modules already imported

    def hour_only(query, table):
        return query.where(table.c.created_at >= sa.text(f"'{params['start']}'::timestamptz"),
                           table.c.created_at < sa.text(f"'{params['end']}'::timestamptz"))

    pg = params["pg"].replace("postgresql://", "postgresql+psycopg2://")
    resource = sql_table(credentials=pg, table="messages", backend="connectorx",
                         included_columns=params["columns"], query_adapter_callback=hour_only,
                         reflection_level="full")
    destination = dlt.destinations.filesystem(
        bucket_url=f"s3://{params['bucket']}/dlt",
        credentials={"aws_access_key_id": params["access_key"], "aws_secret_access_key": params["secret_key"],
                     "endpoint_url": params["endpoint"], "region_name": "us-east-1"})
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = dlt.pipeline(pipeline_name="bench_dlt", destination=destination, dataset_name="bench",
                                pipelines_dir=tmp)
        pipeline.run(resource, loader_file_format="parquet", write_disposition="replace")
        rows = pipeline.last_trace.last_normalize_info.row_counts.get("messages", 0)
    seconds = time.perf_counter() - started
    peak = next(int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    print(json.dumps({"kind": "dlt", "seconds": seconds, "rows": rows, "bytes": 0, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
