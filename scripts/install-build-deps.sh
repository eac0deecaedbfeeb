#!/usr/bin/env bash
# Installs what building the edge needs beyond Rust, on Debian, when missing: protoc and the
# protobuf well-known types (the etcd client's build script compiles etcd's gRPC definitions).
set -euo pipefail

need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)

if [ ${#need[@]} -gt 0 ]; then
  echo "install-build-deps: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >/dev/null
fi
command -v protoc >/dev/null || { echo "install-build-deps: protoc is still missing (apt-get install protobuf-compiler)" >&2; exit 1; }
