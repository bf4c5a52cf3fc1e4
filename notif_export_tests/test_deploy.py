"""The deployment files in deploy/: the instance they configure is the one the project runs on.
(The PostgreSQL-backed instance with the real daemon: defs/test_production_instance.py.)"""

import tomllib

import dagster as dg
import yaml
from dagster._core.instance.config import PoolGranularity

from notif_export.lib.settings import PROJECT_DIR

DEPLOY = PROJECT_DIR / "deploy"


def test_the_instance_queues_runs_behind_their_pools(tmp_path):
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().pool_config.pool_granularity == PoolGranularity.RUN
        assert instance.run_retries_enabled and instance.run_monitoring_enabled


def test_the_helm_values_configure_the_instance_as_deploy_dagster_yaml():
    """The chart writes its own dagster.yaml from the values: they must say what deploy/dagster.yaml says."""
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    daemon = values["dagsterDaemon"]
    retries = instance["run_retries"]
    assert daemon["runRetries"] == {"enabled": retries["enabled"], "maxRetries": retries["max_retries"],
                                    "retryOnAssetOrOpFailure": retries["retry_on_asset_or_op_failure"]}
    assert daemon["runMonitoring"]["enabled"] == instance["run_monitoring"]["enabled"]
    assert daemon["runMonitoring"]["pollIntervalSeconds"] == instance["run_monitoring"]["poll_interval_seconds"]
    assert daemon["runCoordinator"]["type"] == instance["run_coordinator"]["class"]
    assert daemon["runCoordinator"]["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] == \
        instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert values["additionalInstanceConfig"]["concurrency"]["pools"] == instance["concurrency"]["pools"]
    assert values["telemetry"]["enabled"] == instance["telemetry"]["enabled"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False  # Dagster's storage on the production PostgreSQL
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"  # the driver dagster-postgres needs


def test_the_image_serves_the_code_location_the_project_declares():
    module = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    deployment, = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f'"-m", "{module}"]' in dockerfile and f'"{deployment["port"]}"' in dockerfile
    assert f"ENV NOTIF_EXPORT_HOME={deployment['volumeMounts'][0]['mountPath']}" in dockerfile
