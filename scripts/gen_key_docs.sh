#!/usr/bin/env bash
# Rewrites the generated key tables of recipes/README.md (between `<!-- keys: SECTION -->` and
# `<!-- /keys -->`) from the field tables, through `upcycle keys SECTION`. The runner test
# KeyDocsTest checks that the file is current. Usage: scripts/gen_key_docs.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
UPCYCLE="${1:-build}/bin/upcycle"
python3 - "$UPCYCLE" recipes/README.md <<'PY'
import re, subprocess, sys
upcycle, path = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
def table(m):
    body = subprocess.run([upcycle, "keys", m.group(1)], check=True, capture_output=True, text=True).stdout
    return f"<!-- keys: {m.group(1)} -->\n{body}<!-- /keys -->"
new = re.sub(r"<!-- keys: (\w+) -->\n.*?<!-- /keys -->", table, text, flags=re.S)
tmp = path + ".tmp"
open(tmp, "w", encoding="utf-8").write(new)
import os; os.replace(tmp, path)
print(f"gen_key_docs: {len(re.findall(r'<!-- keys: ', new))} tables in {path}")
PY
