#!/usr/bin/env bash
# berth-engine: static inits for `berth run --init` (crates/cli/tests/
# engine_init.rs). berth bundles none; it takes the host's, as podman does:
# catatonit (/usr/bin/catatonit, /usr/libexec/podman/catatonit) and tini
# (/usr/bin/tini-static; /usr/bin/tini is dynamic and cannot be used).
# strace: engine_userns_layers.rs and engine_db_sync.rs count the fsyncs
# (and renames) of
# `run --rm`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends tini catatonit strace >/dev/null
