#!/usr/bin/env bash
# Terraform tooling for tests and CI (idempotent): the offline provider stand-ins and checkov.
#
#   source scripts/terraform-tools.sh     # install, then export TF_CLI_CONFIG_FILE and MODELFN_CHECKOV
#   scripts/terraform-tools.sh            # install, then print the export lines
#   scripts/terraform-tools.sh checkov    # run checkov on terraform/ (and the Dockerfile when present)
#
# Offline machines cannot reach the Terraform registry: ../shared/terraform-offline/install.sh
# installs schema-only stand-ins for hashicorp/google, aws and azurerm and a terraformrc whose
# dev_overrides point at them. checkov lives in its own venv (.tools/checkov-venv) because its HCL
# parser conflicts with python-hcl2.

_mf_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_mf_offline=${MODELFN_TF_OFFLINE:-$_mf_root/../shared/terraform-offline/install.sh}
_mf_checkov_version=3.3.30
_mf_checkov_venv=$_mf_root/.tools/checkov-venv

_mf_install() {
  command -v terraform >/dev/null || { echo "terraform-tools: terraform is not on PATH" >&2; return 1; }
  [ -x "$_mf_offline" ] || [ -f "$_mf_offline" ] || { echo "terraform-tools: $_mf_offline not found" >&2; return 1; }
  local line
  line=$(bash "$_mf_offline" | grep '^export TF_CLI_CONFIG_FILE=') || return 1
  eval "$line"
  if ! "$_mf_checkov_venv/bin/checkov" --version 2>/dev/null | grep -qx "$_mf_checkov_version"; then
    python3 -m venv "$_mf_checkov_venv" &&
      "$_mf_checkov_venv/bin/pip" install -q "checkov==$_mf_checkov_version" || return 1
  fi
  export MODELFN_CHECKOV=$_mf_checkov_venv/bin/checkov
}

_mf_checkov() {
  # checkov ignores -f when -d is given, so the Dockerfile gets its own run.
  local rc=0
  "$_mf_checkov_venv/bin/checkov" -d "$_mf_root/terraform" --framework terraform \
    --skip-download --quiet --compact "$@" || rc=$?
  if [ -f "$_mf_root/Dockerfile" ]; then
    "$_mf_checkov_venv/bin/checkov" -f "$_mf_root/Dockerfile" --framework dockerfile \
      --skip-download --quiet --compact "$@" || rc=$?
  fi
  return "$rc"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: export into the caller's shell.
  _mf_install && echo "terraform-tools: TF_CLI_CONFIG_FILE=$TF_CLI_CONFIG_FILE MODELFN_CHECKOV=$MODELFN_CHECKOV"
else
  set -euo pipefail
  case "${1:-install}" in
    install)
      _mf_install
      echo "export TF_CLI_CONFIG_FILE=$TF_CLI_CONFIG_FILE"
      echo "export MODELFN_CHECKOV=$MODELFN_CHECKOV"
      ;;
    checkov)
      shift
      _mf_checkov "$@"
      ;;
    *)
      echo "usage: $0 [install | checkov [checkov args]]" >&2
      exit 2
      ;;
  esac
fi
