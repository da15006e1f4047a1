#!/usr/bin/env bun
/** make settings-docs: rewrite envs/README.md, clients/README.md and clusters/README.md from the settings tables. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT_DIR } from "./lib/config";
import { runMain } from "./lib/errors";
import { SETTINGS_PAGES } from "./lib/settings/docs";

await runMain(async () => {
  for (const p of SETTINGS_PAGES) {
    const path = join(ROOT_DIR, p.path);
    const text = p.text();
    if (existsSync(path) && readFileSync(path, "utf8") === text) continue;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    console.log(`wrote ${p.path}`);
  }
});
