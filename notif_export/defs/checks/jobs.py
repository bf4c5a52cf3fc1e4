"""The bucket setup checklist as a job, to run from the Dagster UI (Jobs → check_bucket_access)."""

import dagster as dg

from notif_export.defs.shared.resources import DestinationResource
from notif_export.lib.bucket_check import check_bucket, failed


@dg.op(description="Works through the bucket setup checklist and fails if any item failed.")
def check_bucket_setup(context: dg.OpExecutionContext, destination: DestinationResource) -> dg.Output:
    items = check_bucket(destination.connection.access(), destination.destination)
    for item in items:
        (context.log.error if item.status == "FAIL" else context.log.info)(item.render())
    table = "| item | result | detail | fix |\n|---|---|---|---|\n" + "\n".join(
        f"| {i.name} | {i.status} | {i.detail} | {i.fix} |" for i in items
    )
    if failed(items):
        raise dg.Failure(
            description="the bucket setup check failed: "
            + "; ".join(f"{i.name}: {i.fix or i.detail}" for i in items if i.status == "FAIL"),
            metadata={"checklist": dg.MetadataValue.md(table)},
        )
    return dg.Output(None, metadata={"checklist": dg.MetadataValue.md(table)})


@dg.job(tags={"notif_export/kind": "check"},
        description="Checks the bucket setup: credentials, role, bucket, region, the three permissions "
                    "(with a probe object), encryption, public access.")
def check_bucket_access() -> None:
    check_bucket_setup()
