{{ config(materialized='view') }}
select {{ notif_export.star_without(['_source_file', '_file_modified_at']) }}
from {{ ref('int_messages__latest') }}
