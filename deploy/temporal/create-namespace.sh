#!/bin/sh
# One-shot job `temporal-namespace` in docker-compose.yml (image temporalio/admin-tools): waits until
# the Temporal frontend answers, then creates the namespace Tidebox uses unless it exists. Tidebox
# registers its own search attributes (TideboxTenant, TideboxState, ...) when the api and worker start.
set -eu
address=${TEMPORAL_ADDRESS:-temporal:7233}
namespace=${NAMESPACE:-default}
retention=${NAMESPACE_RETENTION:-72h}

tries=0
until temporal operator cluster health --address "$address" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 90 ]; then echo "create-namespace: Temporal at $address is not healthy" >&2; exit 1; fi
  sleep 2
done

tries=0
until temporal operator namespace describe --address "$address" --namespace "$namespace" >/dev/null 2>&1; do
  if temporal operator namespace create --address "$address" --namespace "$namespace" --retention "$retention"; then
    break
  fi
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then echo "create-namespace: cannot create namespace $namespace" >&2; exit 1; fi
  sleep 2
done
echo "create-namespace: namespace $namespace ready"
