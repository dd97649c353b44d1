#!/usr/bin/env bash
# Packages the image layer's tests need (run by .ci/run as root after
# apt-get update): skopeo and umoci write images berth must read,
# docker-registry + apache2-utils (htpasswd -B) + openssl serve the registry
# tests, busybox-static gives test images a real shell.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends \
    skopeo umoci docker-registry apache2-utils openssl busybox-static >/dev/null
# The Debian package starts a registry on :5000 via systemd where systemd
# runs; tests start their own on free ports, so stop it if it is running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
fi
