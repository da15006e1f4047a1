/**
 * The settings pages (envs/README.md, clients/README.md, clusters/README.md)
 * are generated from the tables, so they cannot drift: `make settings-docs`
 * writes them, tests/unit/settings-docs.test.ts compares.
 */
import { CLIENT_SETTINGS } from "./client";
import { CLUSTER_SETTINGS } from "./cluster";
import { settingsDoc } from "./engine";
import { ENV_SETTINGS } from "./env";

const page = (title: string, intro: string, table: string, source: string) =>
  [
    `# ${title}`,
    "",
    intro,
    "",
    `Generated from \`${source}\` by \`make settings-docs\` (a unit test fails when this page and the table differ).`,
    "A key with a default may be left out; an unknown key is an error that suggests the nearest known one;",
    "every error names the file, the key, the value and the fix.",
    "",
    table,
  ].join("\n");

export const SETTINGS_PAGES: { path: string; text: () => string }[] = [
  {
    path: "envs/README.md",
    text: () =>
      page(
        "Stack settings: `envs/<stack>.env`",
        "Committed, commented settings per stack (`STACK=<name>` picks `envs/<name>.env`); generated secrets live in\n`envs/.secrets.<stack>.env` (0600, gitignored). Loaded by `scripts/lib/config.ts`.",
        settingsDoc(ENV_SETTINGS),
        "scripts/lib/settings/env.ts",
      ),
  },
  {
    path: "clients/README.md",
    text: () =>
      page(
        "Customer settings: `clients/<name>/client.env`",
        "One folder per customer (`make deploy-client CLIENT=<name>`); generated secrets in `.secrets.env` beside it\n(0600, gitignored), pinned ssh host keys in `known_hosts`.",
        settingsDoc(CLIENT_SETTINGS),
        "scripts/lib/settings/client.ts",
      ),
  },
  {
    path: "clusters/README.md",
    text: () =>
      page(
        "Multi-host cluster settings: `clusters/<name>/cluster.env`",
        "One folder per cluster on three hosts (issue 14); generated secrets in `.secrets.env` beside it (0600, gitignored).",
        settingsDoc(CLUSTER_SETTINGS),
        "scripts/lib/settings/cluster.ts",
      ),
  },
];
