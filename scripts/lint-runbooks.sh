#!/usr/bin/env bash
# Lint the embedded runbooks (runbooks/*.md).
#
# For every sh/bash/shell step of every runbook this script:
#   - writes the step into its own temp file, prefixed with a shebang,
#     `set -euo pipefail` and exports declaring the variables opsdeck
#     provides (CLUSTER CONTEXT KUBECONFIG APP_NAMESPACE OPSDECK_ENV), the
#     cluster's [cluster.env] variables, the runbook's declared `vars` and
#     the names earlier steps hand over through "$OPSDECK_ENV";
#   - runs shellcheck on it;
# and fails when
#   - a runbook has no front matter `title` or `summary`;
#   - a step has no `name`, a name is not kebab-case, or names repeat;
#   - a `kubectl` call lacks `--context "$CONTEXT"`;
#   - a step refers to a variable nobody provides (typo guard);
#   - a step that scales, deletes, restarts, applies, patches, creates,
#     cordons or restarts k3s is not marked destructive=true.
# Problems are printed as `runbook:step: problem`; exit status 1 if any.
#
# Usage: scripts/lint-runbooks.sh [RUNBOOK.md ...]   (default: runbooks/*.md)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "lint-runbooks: shellcheck is not installed (Debian: apt-get install -y shellcheck)" >&2
  exit 2
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "lint-runbooks: python3 is required" >&2
  exit 2
fi

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  shopt -s nullglob
  files=("$repo_root"/runbooks/*.md)
  shopt -u nullglob
fi
if [ "${#files[@]}" -eq 0 ]; then
  echo "lint-runbooks: no runbooks found in $repo_root/runbooks" >&2
  exit 1
fi

workdir="$(mktemp -d "${TMPDIR:-/tmp}/lint-runbooks.XXXXXX")"
# Remove only what this script created (files, then the empty directory).
trap 'find "$workdir" -type f -delete; find "$workdir" -depth -type d -empty -delete' EXIT

# The extractor writes one script per step into $workdir and prints, per
# step, a tab-separated line: runbook, step name, script path. Structural
# problems are printed to stdout as `PROBLEM<TAB>runbook:step: problem`.
python3 - "$workdir" "${files[@]}" >"$workdir/index.tsv" <<'PY'
import json
import os
import re
import sys

workdir = sys.argv[1]
files = sys.argv[2:]

OPSDECK_VARS = ["CLUSTER", "CONTEXT", "KUBECONFIG", "APP_NAMESPACE", "OPSDECK_ENV"]
# Variables that come from a cluster's [cluster.env] table (interfaces.md).
CLUSTER_ENV_VARS = ["BACKUP_DIR"]
# Variables any shell has; referring to them is fine.
SHELL_VARS = {
    "HOME", "PATH", "PWD", "USER", "HOSTNAME", "TMPDIR", "IFS", "RANDOM",
    "SECONDS", "LINENO", "BASH_SOURCE", "PIPESTATUS", "EUID", "UID", "OPTARG",
    "OPTIND", "REPLY", "EPOCHSECONDS",
}

FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([A-Za-z0-9_+-]*)\s*(.*)$")
STEP_LANGS = {"sh", "bash", "shell"}
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# State-changing commands that require destructive=true.
DESTRUCTIVE_PATTERNS = [
    (re.compile(r"\bkubectl\b[^|;&]*\s(scale|delete|apply|patch|replace|edit|cordon|uncordon|drain|annotate|label|taint)\b"), "kubectl state change"),
    (re.compile(r"\bkubectl\b[^|;&]*\srollout\s+(restart|undo|pause|resume)\b"), "kubectl rollout change"),
    (re.compile(r"\bkubectl\b[^|;&]*\screate\b(?![^|;&]*--dry-run)"), "kubectl create"),
    (re.compile(r"\bkubectl\b[^|;&]*\sset\s+(image|env|resources)\b"), "kubectl set"),
    (re.compile(r"\bsystemctl\s+(restart|stop|start|kill)\b"), "systemctl state change"),
    (re.compile(r"\bargocd\s+app\s+(sync|rollback|delete|set|patch)\b"), "argocd state change"),
    (re.compile(r"\b(DROP|TRUNCATE)\s+(DATABASE|TABLE|SCHEMA)\b(?![^\n]*scratch-ok)", re.I), "SQL drop/truncate"),
]


def problem(runbook, step, text):
    print("PROBLEM\t%s:%s: %s" % (runbook, step, text))


def parse_front_matter(lines):
    """Return (dict, body_start_index). Minimal YAML: top-level scalars,
    `targets` list, and `vars` map of maps. Uses PyYAML when available."""
    if not lines or lines[0].strip() != "---":
        return None, 0
    end = None
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            end = i
            break
    if end is None:
        return None, 0
    text = "".join(lines[1:end])
    try:
        import yaml  # type: ignore

        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            data = {}
        return data, end + 1
    except ImportError:
        pass
    data = {}
    current = None
    for raw in lines[1:end]:
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        m = re.match(r"^\s*([A-Za-z0-9_]+)\s*:\s*(.*)$", raw)
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip()
        if indent == 0:
            current = key
            data[key] = value.strip("\"'") if value else {}
        elif current == "vars" and indent == 2:
            data.setdefault("vars", {})
            if not isinstance(data["vars"], dict):
                data["vars"] = {}
            data["vars"][key] = {}
    return data, end + 1


def parse_attrs(info):
    info = info.strip()
    if not info:
        return {}
    m = re.match(r"^\{(.*)\}\s*$", info)
    if not m:
        return {}
    inner = m.group(1).strip()
    if inner.startswith('"'):
        try:
            obj = json.loads("{" + inner + "}")
            return {str(k): str(v) for k, v in obj.items()}
        except ValueError:
            return {"__invalid__": info}
    attrs = {}
    for tok in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|\'([^\']*)\'|\S+)', inner):
        key = tok.group(1)
        val = tok.group(3) if tok.group(3) is not None else tok.group(4) if tok.group(4) is not None else tok.group(2)
        attrs[key] = val
    return attrs


def logical_lines(body):
    out, cur = [], ""
    for line in body.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("#"):
            if cur:
                continue
            out.append("")
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    if cur:
        out.append(cur)
    return out


KUBECTL = re.compile(r"(^|[\s;&|(`])kubectl(\s|$)")
CONTEXT_OK = re.compile(r"--context(=|\s+)\"\$(CONTEXT|\{CONTEXT\})\"")


def check_kubectl(runbook, step, body):
    for ll in logical_lines(body):
        for m in KUBECTL.finditer(ll):
            start = m.end(1)
            rest = ll[start:]
            # The kubectl invocation ends at the first pipe, ;, & or $( ... ).
            seg = re.split(r"\|\||&&|[|;&]|\$\(", rest[len("kubectl"):], maxsplit=1)[0]
            if not CONTEXT_OK.search(seg):
                problem(runbook, step, 'kubectl without --context "$CONTEXT": %s' % ("kubectl" + seg).strip()[:100])


VAR_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
ASSIGN = re.compile(r"(?:^|[\s;&|(])(?:local\s+|export\s+|readonly\s+|declare\s+(?:-\w+\s+)*)?([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\+?=")
READ_CMD = re.compile(r"\bread\s+([^;&|<>\n]*)")


def read_targets(body):
    """Names assigned by `read [-r] [-a ARR] [-d D] ... NAME...`."""
    names = []
    for m in READ_CMD.finditer(body):
        toks = m.group(1).split()
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.startswith("-"):
                if t[-1] in "adinNptu" and len(t) == 2:
                    if t == "-a" and i + 1 < len(toks):
                        names.append(toks[i + 1])
                    i += 2
                    continue
                i += 1
                continue
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", t):
                names.append(t)
                i += 1
                continue
            break
    return names
FOR_VAR = re.compile(r"\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b")
FUNC_ARGS = re.compile(r"^[0-9@#?*!$-]$")


QUOTED_HEREDOC = re.compile(r"<<-?\s*(['\"])([A-Za-z_][A-Za-z0-9_]*)\1[^\n]*\n(.*?)\n\s*\2\s*(?=\n|$)", re.S)


def bash_expanded_text(text):
    """The parts of a step where bash expands $VAR: drops quoted heredoc
    bodies, comments and single-quoted strings (for `sh -c '...'` payloads
    the variables belong to the shell in the pod)."""
    text = QUOTED_HEREDOC.sub(lambda m: "<<" + m.group(2) + "\n" + m.group(2), text)
    out = []
    i, n = 0, len(text)
    in_double = False
    # $( ... ) opens a new quoting context, also inside double quotes.
    stack = []  # (in_double outside, paren depth inside)
    depth = 0
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append(text[i:i + 2])
            i += 2
            continue
        if c == "$" and i + 1 < n and text[i + 1] == "(":
            stack.append((in_double, depth))
            in_double, depth = False, 0
            out.append("$(")
            i += 2
            continue
        if not in_double and stack and c in "()":
            if c == "(":
                depth += 1
            elif depth > 0:
                depth -= 1
            else:
                in_double, depth = stack.pop()
            out.append(c)
            i += 1
            continue
        if in_double:
            if c == '"':
                in_double = False
            out.append(c)
            i += 1
            continue
        if c == '"':
            in_double = True
            out.append(c)
            i += 1
            continue
        if c == "'":
            j = i + 1
            if i > 0 and text[i - 1] == "$":  # $'...' ANSI-C string
                while j < n and text[j] != "'":
                    j += 2 if text[j] == "\\" else 1
            else:
                while j < n and text[j] != "'":
                    j += 1
            out.append("''")
            i = j + 1
            continue
        if c == "#" and (i == 0 or text[i - 1] in " \t\n;"):
            while i < n and text[i] != "\n":
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def main():
    for path in files:
        runbook = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
        fm, start = parse_front_matter(lines)
        if fm is None:
            problem(runbook, "-", "no YAML front matter")
            fm = {}
        for key in ("title", "summary"):
            val = fm.get(key)
            if not isinstance(val, str) or not val.strip():
                problem(runbook, "-", "front matter lacks `%s`" % key)
        if isinstance(fm.get("summary"), str) and "\n" in fm["summary"].strip():
            problem(runbook, "-", "front matter `summary` must be one line")
        declared = fm.get("vars") or {}
        if not isinstance(declared, dict):
            problem(runbook, "-", "front matter `vars` must be a map")
            declared = {}
        for name, spec in declared.items():
            if not re.match(r"^[A-Z_][A-Z0-9_]*$", str(name)):
                problem(runbook, "-", "var `%s` is not an UPPER_SNAKE name" % name)
            if isinstance(spec, dict) and spec.get("secret") in (True, "true") and spec.get("default"):
                problem(runbook, "-", "secret var `%s` must not have a default" % name)

        # Collect steps.
        steps = []
        i = start
        while i < len(lines):
            m = FENCE_OPEN.match(lines[i].rstrip("\n"))
            if not m:
                i += 1
                continue
            indent, fence, lang, info = m.groups()
            j = i + 1
            body = []
            while j < len(lines):
                closing = lines[j].strip()
                if closing.startswith(fence[0] * len(fence)) and closing.strip(fence[0]) == "":
                    break
                body.append(lines[j])
                j += 1
            if lang.lower() in STEP_LANGS:
                steps.append((i + 1, parse_attrs(info), "".join(body), info))
            i = j + 1

        if not steps:
            problem(runbook, "-", "runbook has no sh/bash/shell steps")

        handed = set()
        for _, _, body, _ in steps:
            for line in body.split("\n"):
                if "OPSDECK_ENV" in line:
                    handed.update(re.findall(r"([A-Z_][A-Z0-9_]*)=", line))
        handed.discard("OPSDECK_ENV")

        seen = {}
        for n, (lineno, attrs, body, info) in enumerate(steps, 1):
            if "__invalid__" in attrs:
                problem(runbook, "line%d" % lineno, "unparsable attributes: %s" % info)
            name = attrs.get("name", "")
            label = name or "step%d(line %d)" % (n, lineno)
            if not name:
                problem(runbook, label, "step has no name")
            elif not KEBAB.match(name):
                problem(runbook, label, "step name is not kebab-case")
            if name:
                if name in seen:
                    problem(runbook, label, "duplicate step name (also at line %d)" % seen[name])
                seen.setdefault(name, lineno)
            for key in ("destructive", "verify", "interactive"):
                if key in attrs and attrs[key] not in ("true", "false"):
                    problem(runbook, label, "%s must be true or false" % key)
            if "timeout" in attrs and not re.match(r"^[0-9]+$", attrs["timeout"]):
                problem(runbook, label, "timeout must be whole seconds")
            if not body.strip():
                problem(runbook, label, "empty step")

            check_kubectl(runbook, label, body)

            destructive = attrs.get("destructive") == "true"
            if not destructive:
                code = "\n".join(logical_lines(body))
                for pat, what in DESTRUCTIVE_PATTERNS:
                    hit = pat.search(code)
                    if hit:
                        problem(runbook, label, "%s (%s) in a step not marked destructive=true" % (what, hit.group(0).strip()[:60]))
                        break

            # Undeclared variable references (outside single quotes).
            expanded = bash_expanded_text(body)
            local_assigned = set(ASSIGN.findall(expanded))
            local_assigned.update(read_targets(expanded))
            local_assigned.update(FOR_VAR.findall(expanded))
            known = (set(OPSDECK_VARS) | set(CLUSTER_ENV_VARS) | SHELL_VARS
                     | set(map(str, declared)) | handed | local_assigned)
            for ref in sorted(set(VAR_REF.findall(expanded))):
                if FUNC_ARGS.match(ref) or ref in known:
                    continue
                problem(runbook, label, "variable $%s is neither provided by opsdeck, declared in vars, handed over via $OPSDECK_ENV nor assigned in the step" % ref)

            exports = OPSDECK_VARS + CLUSTER_ENV_VARS + sorted(map(str, declared)) + sorted(handed)
            seen_exports = []
            for e in exports:
                if e not in seen_exports:
                    seen_exports.append(e)
            script = os.path.join(workdir, "%s__%02d.sh" % (runbook, n))
            with open(script, "w", encoding="utf-8") as out:
                out.write("#!/usr/bin/env bash\n")
                out.write("set -euo pipefail\n")
                out.write("# Provided by opsdeck, [cluster.env], front matter vars, $OPSDECK_ENV:\n")
                out.write("export %s\n" % " ".join(seen_exports))
                out.write("# --- step %s (%s line %d) ---\n" % (label, os.path.basename(path), lineno))
                out.write(body)
            print("%s\t%s\t%s\t%d" % (runbook, label, script, lineno))


main()
PY

status=0
header_lines=5
while IFS=$'\t' read -r kind a b c; do
  if [ "$kind" = "PROBLEM" ]; then
    printf '%s\n' "$a"
    status=1
    continue
  fi
  runbook="$kind"
  step="$a"
  script="$b"
  # SC2016 is excluded on purpose: steps hand scripts to the shell inside a
  # pod (`kubectl exec ... -- sh -c '...'`) so that secrets held in the pod's
  # environment expand there and never appear in a command line here.
  if ! out="$(shellcheck --shell=bash --severity=style --exclude=SC2016 --format=gcc "$script" 2>&1)"; then
    status=1
    # Map the temp file's line numbers back to "line N of the step".
    while IFS= read -r line; do
      [ -n "$line" ] || continue
      msg="${line#"$script":}"
      if [[ "$msg" =~ ^([0-9]+):([0-9]+):\ (.*)$ ]]; then
        # 5 header lines precede the step body; the body starts on the
        # line after the opening fence (md line $c).
        md_line=$(( c + BASH_REMATCH[1] - header_lines ))
        msg="md line $md_line col ${BASH_REMATCH[2]}: ${BASH_REMATCH[3]}"
      fi
      printf '%s:%s: shellcheck: %s\n' "$runbook" "$step" "$msg"
    done <<<"$out"
  fi
done <"$workdir/index.tsv"

if [ "$status" -eq 0 ]; then
  count="$(grep -vc '^PROBLEM' "$workdir/index.tsv" || true)"
  echo "lint-runbooks: ${#files[@]} runbooks, $count steps: ok"
fi
exit "$status"
