#!/usr/bin/env python3
# Regenerates docs/integration-log.md from the catalogue in shared/mapping/src/codes.rs.
# Run from the repo root: python3 scripts/gen-log-codes.py
import re
src=open('shared/mapping/src/codes.rs').read()
rows=re.findall(r'(\w+) => "(\w+)", (\w+), "((?:[^"\\]|\\.)*)";', src)
out=["# Integration Log","",
"Every run writes entries to the Integration Log: run started and finished with counts, records created, linked and updated, conflicts, and everything that failed. Each entry has a time, the run id, the integration (`organizations`, `people`, `deals`), a level (`info`, `warning`, `error`), a stable code, the object and both ids, the Salesforce record's address, a plain message, the fix, and the raw details.",
"",
"```sh",
"prmsync log --level error                      # what needs attention, with the fix",
"prmsync log --integration people --since 2h    # recent entries of one integration",
"prmsync log --record 001Sm0000000001IAA        # one record's history (Salesforce or PRM id)",
"prmsync log --json                             # one JSON object per line",
"prmsync log ack --all                          # acknowledge the errors read",
"```",
"",
"Entries older than 90 days are pruned. `prmsync status` counts unacknowledged errors per integration.",
"",
"## Codes","",
"| code | level | what to do |","|---|---|---|"]
for v,code,level,fix in rows:
    out.append(f"| `{code}` | {level.lower()} | {fix.replace('|','/') or '—'} |")
open('docs/integration-log.md','w').write("\n".join(out)+"\n")
print(len(rows))
