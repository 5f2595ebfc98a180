// Removes download addresses ("resolved") and donation links ("funding") from
// npm lockfiles, so that no committed file names a host. `npm ci` installs
// from such a lockfile as usual (each package is still pinned by version and
// checked against its "integrity" hash), from whatever source npm is
// configured with.
//
// Usage: node clients/strip-lockfile.mjs clients/*/package-lock.json
import { readFileSync, writeFileSync } from "node:fs";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node strip-lockfile.mjs PACKAGE-LOCK.JSON...");
  process.exit(2);
}
for (const file of files) {
  const lock = JSON.parse(readFileSync(file, "utf8"));
  let removed = 0;
  for (const entry of Object.values(lock.packages ?? {})) {
    for (const key of ["resolved", "funding"]) {
      if (key in entry) {
        delete entry[key];
        removed += 1;
      }
    }
  }
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(`${file}: removed ${removed} field(s)`);
}
