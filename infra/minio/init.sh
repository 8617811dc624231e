#!/bin/sh
# One-shot MinIO setup run by the `minio-init` compose service (image minio/mc) with the root keys, which no other
# service gets: the buckets, one least-privilege user per client, and no anonymous access. Safe to rerun: every step
# is idempotent, and `user add` with an existing name resets its secret to the value in infra/.env (rotation).
set -eu

mc alias set cc http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"

# canvascraft: sources (pipelines' data.source, drift.incoming); canvascraft-artifacts: CANVASCRAFT_ARTIFACT_ROOT;
# mlflow-artifacts: the MLflow server's --artifacts-destination.
mc mb --ignore-existing cc/canvascraft cc/canvascraft-artifacts cc/mlflow-artifacts
for bucket in canvascraft canvascraft-artifacts mlflow-artifacts; do
  mc anonymous set none "cc/$bucket"   # unsigned requests get nothing, even if someone made a bucket public by hand
done

mc admin policy create cc canvascraft-worker /init/canvascraft-worker-policy.json
mc admin policy create cc mlflow-server /init/mlflow-server-policy.json
mc admin user add cc "$MINIO_WORKER_ACCESS_KEY" "$MINIO_WORKER_SECRET_KEY"
mc admin user add cc "$MINIO_MLFLOW_ACCESS_KEY" "$MINIO_MLFLOW_SECRET_KEY"

# `policy attach` fails when the policy is already attached ("policy change is already in effect"); a rerun is fine
# as long as the user really has it.
attach() {
  mc admin policy attach cc "$1" --user "$2" || mc admin user info cc "$2" --json | grep -q "\"$1\""
}
attach canvascraft-worker "$MINIO_WORKER_ACCESS_KEY"
attach mlflow-server "$MINIO_MLFLOW_ACCESS_KEY"
