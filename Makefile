# pgplatform: the verbs. `make help` lists them; each calls one script in scripts/.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# bun comes from npm (node_modules/.bin/bun) unless one is on PATH.
BUN ?= $(shell command -v bun 2>/dev/null || echo node_modules/.bin/bun)
BIOME := node_modules/.bin/biome
STACK ?= dev
export STACK
# Integration tests run against their own stack (envs/test.env): a running dev stack is never touched.
TEST_STACK ?= test
# Integration tests wait for failovers and restores; bun's default per-test timeout is 5 s.
TEST_TIMEOUT_MS ?= 600000
TEST_LOG := .state/test-results.log
# Attack files (tests/integration/attack-*.test.ts) run after every other flow, and the Postgres-log
# password grep last of all, so it reads the logs of the whole run.
LOG_GREP_FILE := tests/integration/attack-password-log.test.ts
ATTACK_FILES = $(filter-out $(LOG_GREP_FILE),$(sort $(wildcard tests/integration/attack-*.test.ts))) $(wildcard $(LOG_GREP_FILE))
# Monitoring's test needs a healthy stack no other test disturbs, with MONITORING on and a 2 s interval:
# it runs alone on its own stack (envs/test-monitoring.env, 127.0.8.x) after the others.
MONITORING_FILE := tests/integration/monitoring.test.ts
# The local images first: docker-runtime.test.ts runs on them (and is skipped without them), so on a
# fresh machine they must be built before it, not after it in name order.
IMAGES_FILE := tests/integration/images-local.test.ts
INTEGRATION_FILES = $(IMAGES_FILE) $(filter-out $(ATTACK_FILES) $(MONITORING_FILE) $(IMAGES_FILE),$(sort $(wildcard tests/integration/*.test.ts))) $(ATTACK_FILES)

.PHONY: help
help: ## List the targets
	@echo "pgplatform: run your own HA Postgres/Supabase platform (STACK=$(STACK))"
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-16s %s\n",$$1,$$2}'

# --- setup -----------------------------------------------------------------
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm is required (install Node.js 18+ and npm)"; exit 1; }
	@# A `sudo make` that ran first leaves node_modules to root: name it and the repair instead of npm's EACCES.
	@if [ -e node_modules ] && [ ! -O node_modules ]; then echo "error [OWNED_BY_OTHER_USER]: node_modules belongs to $$(stat -c %U node_modules) (a sudo make ran here first?), you are $$(id -un)" >&2; echo "  fix: sudo chown -R $$(id -un): node_modules" >&2; exit 1; fi
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: deps
deps: node_modules/.installed ## Install the JS dependencies (bun itself comes from npm)

.PHONY: setup
setup: deps ## Install the OS packages (apt, as root on Debian/Ubuntu) or say what to install
	$(BUN) scripts/setup.ts

.PHONY: images-local
images-local: deps ## Build the docker runtime's cluster images from Debian's packages with podman (as root): [ONLY=patroni,etcd] [REBUILD=1] [MIRROR=url]
	$(BUN) scripts/images-local.ts $(ARGS)

# --- the stack -------------------------------------------------------------
.PHONY: dev-up
dev-up: deps ## Bring the whole stack up (installs what it needs); safe to re-run
	$(BUN) scripts/dev-up.ts $(ARGS)

.PHONY: dev-down
dev-down: deps ## Stop the stack in a safe order; keeps data
	$(BUN) scripts/dev-down.ts $(ARGS)

.PHONY: status
status: deps ## Members, roles, timelines, lag, HAProxy backends (ARGS=--json)
	@# No echo of the command: `make status ARGS=--json` must print pure JSON.
	@$(BUN) scripts/status.ts $(ARGS)

.PHONY: alerts
alerts: deps ## Alert rules and their state from the stack's Prometheus (MONITORING=true; ARGS=--json)
	@$(BUN) scripts/alerts.ts $(ARGS)

.PHONY: logs
logs: deps ## Last lines of each log, or one: SVC=pg1|etcd1|haproxy|nginx (ARGS=--follow)
	$(BUN) scripts/logs.ts $(SVC) $(ARGS)

.PHONY: logs-rotate
logs-rotate: deps ## Rotate (copy, truncate) every stack log bigger than LOG_MAX_SIZE_KB, keeping LOG_KEEP copies (dev-up runs this every 10 s)
	$(BUN) scripts/logs-rotate.ts $(ARGS)

.PHONY: db-url
db-url: deps ## Print a connection URL through HAProxy: DB=<name> [ROLE=<role>] [PORT=rw|ro] [POOL=1: through pgbouncer]
	@# PORT counts only when given on the command line: a PORT exported in the shell (dev servers set one) must not pick the route.
	@$(BUN) scripts/db-url.ts $(if $(filter command line,$(origin PORT)),--port $(PORT),)

.PHONY: new-app
new-app: deps ## Onboard an app: NAME=<app> [PORT=N] [DOMAIN=host] [SUPABASE=1] [ACCESS=private|public|none] [YES=1]; REMOVE=1 drops it (after a backup)
	@# NAME/PORT/DOMAIN count only when given on the command line: a PORT exported in the shell must not pick the app's port.
	$(BUN) scripts/new-app.ts $(if $(filter command line,$(origin NAME)),$(NAME),) $(if $(filter command line,$(origin PORT)),--port $(PORT),) $(if $(filter command line,$(origin DOMAIN)),--domain $(DOMAIN),) $(if $(filter 1 true yes,$(SUPABASE)),--supabase,) $(if $(filter command line,$(origin ACCESS)),--access $(ACCESS),) $(if $(filter 1 true yes,$(REMOVE)),--remove,) $(if $(filter 1 true yes,$(YES)),--yes,) $(ARGS)

.PHONY: access-plan
access-plan: deps ## Who can reach which app: private (tailnet) and public (tunnel) URLs from the registry (ARGS=--json)
	@$(BUN) scripts/access-plan.ts $(ARGS)

.PHONY: access-apply
access-apply: deps ## Write the cloudflared, tailscale serve and tunnel-origin nginx configs; reload what is installed [ALLOW_PUBLIC_PRODUCTION=1]
	$(BUN) scripts/access-apply.ts $(if $(filter 1 true yes,$(ALLOW_PUBLIC_PRODUCTION)),--allow-public-production,) $(ARGS)

.PHONY: migrate-saas
migrate-saas: deps ## Move a Supabase cloud project here, verified: SOURCE_ENV=<0600 file with SOURCE_DB_URL=...> TARGET_DB=<db> [PLAN=1] [REPLACE=1] [ACCEPT_LEFT_OUT=1] [TRUST_SOURCE_CODE=1]
	@# A URL on make's command line is in every process list (make's argv) before we run: refuse it and say how instead.
	@$(if $(filter command line,$(origin SOURCE_DB_URL)),echo "error [SOURCE_URL_ON_COMMAND_LINE]: SOURCE_DB_URL on make's command line shows the password in the process list" >&2; echo "  fix: put SOURCE_DB_URL=... in a file; chmod 600 it; run make migrate-saas SOURCE_ENV=<file> (in a terminal you can leave it out: you are asked with hidden input); change the password if others share this machine" >&2; exit 1,true)
	$(BUN) scripts/migrate-saas.ts $(if $(TARGET_DB),--target-db $(TARGET_DB),) $(if $(SOURCE_ENV),--env-file $(SOURCE_ENV),) $(if $(filter 1 true yes,$(PLAN)),--plan,) $(if $(filter 1 true yes,$(REPLACE)),--replace,) $(if $(filter 1 true yes,$(ACCEPT_LEFT_OUT)),--accept-left-out,) $(if $(filter 1 true yes,$(TRUST_SOURCE_CODE)),--trust-source-code,) $(ARGS)

.PHONY: deploy-client
deploy-client: deps ## Stamp out a customer's server: CLIENT=acme HOST=ops@server DOMAIN=acme.internal ACCESS=internal|public [ADMIN_EMAIL=..] [PROFILE=16|32|64] [PLAN=1] [ROLLBACK=1] [ROTATE=KEY] [YES=1] [TRUST_NEW_HOST=1]
	@# CLIENT/HOST/DOMAIN/ACCESS/PROFILE count only when given on the command line: zsh exports HOST, for one.
	$(BUN) scripts/deploy-client.ts $(if $(filter command line,$(origin CLIENT)),--client $(CLIENT),) $(if $(filter command line,$(origin HOST)),--host $(HOST),) $(if $(filter command line,$(origin DOMAIN)),--domain $(DOMAIN),) $(if $(filter command line,$(origin ACCESS)),--access $(ACCESS),) $(if $(filter command line,$(origin PROFILE)),--profile $(PROFILE),) $(if $(filter command line,$(origin ADMIN_EMAIL)),--admin-email $(ADMIN_EMAIL),) $(if $(filter 1 true yes,$(PLAN)),--plan,) $(if $(filter 1 true yes,$(ROLLBACK)),--rollback,) $(if $(ROTATE),--rotate $(ROTATE),) $(if $(filter 1 true yes,$(YES)),--yes,) $(if $(filter 1 true yes,$(TRUST_NEW_HOST)),--trust-new-host,) $(ARGS)

.PHONY: keys
keys: deps ## An environment's SUPABASE_URL and anon key, and where its service key is (never printed): [ENV=dev|staging|production]
	$(BUN) scripts/keys.ts $(if $(filter command line,$(origin ENV)),--env $(ENV),) $(ARGS)

.PHONY: rotate-jwt
rotate-jwt: deps ## Replace one environment's JWT secret and re-issue its API keys (old keys refused): DB=<database> [YES=1]
	$(BUN) scripts/rotate-jwt.ts $(if $(filter command line,$(origin DB)),$(DB),) $(if $(filter 1 true yes,$(YES)),--yes,) $(ARGS)

.PHONY: clean
clean: deps ## Stop the stack and delete its data and state (asks; YES=1 to skip)
	$(BUN) scripts/clean.ts $(if $(filter 1 true yes,$(YES)),--yes,) $(ARGS)

# --- backups (cron runs `make backup`; see `make backup-cron`) ---------------
.PHONY: backup
backup: deps ## Dump every registered database + pgBackRest backup, verify by restore, apply retention
	$(BUN) scripts/backup.ts $(ARGS)

.PHONY: backup-verify
backup-verify: deps ## Restore the newest backup (or FROM=<id>) into a scratch instance and compare
	$(BUN) scripts/backup-verify.ts $(ARGS)

.PHONY: restore
restore: deps ## Restore DB=<name> [FROM=<backup id>] [TO=<new name>] [YES=1] [SOURCE=offsite] into the live cluster
	$(BUN) scripts/restore.ts $(ARGS)

.PHONY: restore-pitr
restore-pitr: deps ## Point-in-time restore AT='2026-11-21 14:05:00+00' into a new scratch instance [KEEP=1] [SOURCE=offsite]
	$(BUN) scripts/restore-pitr.ts $(ARGS)

.PHONY: backup-list
backup-list: deps ## Logical and physical backups with their status (ARGS=--json)
	@$(BUN) scripts/backup-list.ts $(ARGS)

.PHONY: backup-cron
backup-cron: deps ## Print the crontab line for the nightly backup; INSTALL=1 installs it
	@$(BUN) scripts/backup-cron.ts $(ARGS)

.PHONY: backup-drill
backup-drill: deps ## Restore from the OFF-SITE copy alone into a scratch instance, timed (BACKUP_OFFSITE)
	$(BUN) scripts/backup-drill.ts $(ARGS)

.PHONY: backup-drill-cron
backup-drill-cron: deps ## Print the crontab line for backup-drill; INSTALL=1 installs it
	@$(BUN) scripts/backup-cron.ts --drill $(ARGS)

# --- a production cluster on three hosts (clusters/<CLUSTER>/cluster.env) ----
CLUSTER ?=
# The namespace lab's cluster is driven from its operator namespace, like an operator's laptop on the hosts' network.
CLUSTER_RUN = $(if $(filter lab,$(CLUSTER)),ip netns exec pgplab-op ,)$(BUN)
CLUSTER_ARGS = $(if $(CLUSTER),--cluster $(CLUSTER),) $(if $(filter command line,$(origin HOSTS)),--hosts $(HOSTS),) $(if $(filter command line,$(origin VIP)),--vip $(VIP),) $(if $(filter 1 true yes,$(TRUST_NEW_HOST)),--trust-new-host,)

.PHONY: cluster-lab
cluster-lab: deps ## Build the namespace lab (3 hosts with sshd + an operator namespace) and clusters/lab/cluster.env (root)
	$(BUN) scripts/cluster-lab.ts $(ARGS)

.PHONY: cluster-lab-down
cluster-lab-down: deps ## Remove the namespace lab and everything of it (found by prefix pgplab)
	$(BUN) scripts/cluster-lab-down.ts $(ARGS)

.PHONY: cluster-plan
cluster-plan: deps ## Read-only preflight of every host: CLUSTER=crm [HOSTS=ops@10.0.0.1,... VIP=10.0.0.50] [TRUST_NEW_HOST=1]
	$(CLUSTER_RUN) scripts/cluster-plan.ts $(CLUSTER_ARGS) $(ARGS)

.PHONY: cluster-deploy
cluster-deploy: deps ## Install/configure every host over SSH, bring the cluster up, verify: CLUSTER=crm
	$(CLUSTER_RUN) scripts/cluster-deploy.ts $(CLUSTER_ARGS) $(ARGS)

.PHONY: cluster-switchover
cluster-switchover: deps ## Hand the leader role to another member (default: the sync standby); the VIP follows: CLUSTER=crm [TO=crm2]
	$(CLUSTER_RUN) scripts/cluster-switchover.ts $(CLUSTER_ARGS) $(if $(filter command line,$(origin TO)),--to $(TO),) $(ARGS)

.PHONY: cluster-rolling-restart
cluster-rolling-restart: deps ## Restart every member one at a time: replicas, a switchover to the sync standby, the old leader: CLUSTER=crm
	$(CLUSTER_RUN) scripts/cluster-rolling-restart.ts $(CLUSTER_ARGS) $(ARGS)

.PHONY: cluster-replace
cluster-replace: deps ## Replace a member's host: etcd member remove/add, Patroni re-clones on NEW: CLUSTER=crm OLD=crm3 NEW=ops@10.0.0.4
	$(CLUSTER_RUN) scripts/cluster-replace.ts $(CLUSTER_ARGS) $(if $(filter command line,$(origin OLD)),--old $(OLD),) $(if $(filter command line,$(origin NEW)),--new $(NEW),) $(ARGS)

.PHONY: cluster-drill
cluster-drill: deps ## A failure under a write load on the namespace lab: CLUSTER=lab SCENARIO=partition-leader|kill-host|partition-etcd-minority
	$(CLUSTER_RUN) scripts/cluster-drill.ts $(CLUSTER_ARGS) $(if $(SCENARIO),--scenario $(SCENARIO),) $(ARGS)

.PHONY: cluster-status
cluster-status: deps ## Members, roles, sync standby, VIP holder, etcd of a cluster: CLUSTER=crm [ARGS=--json]
	@$(CLUSTER_RUN) scripts/cluster-status.ts $(if $(CLUSTER),--cluster $(CLUSTER),) $(ARGS)

# --- tests -----------------------------------------------------------------
.PHONY: lint
lint: deps ## Format and lint check (Biome, biome.json): writes nothing, fails on a finding; runs first in make test
	$(BIOME) check .

.PHONY: format
format: deps ## Rewrite every file to the formatter's layout (Biome); review git diff, commit
	$(BIOME) format --write .

.PHONY: test
test: deps ## Lint, unit tests, then integration tests against a real native test cluster
	$(BIOME) check .
	$(BUN) scripts/setup.ts --tests
	@mkdir -p .state && : > $(TEST_LOG)
	@rc=0; \
	$(BUN) test --timeout 30000 tests/unit 2>&1 | tee -a $(TEST_LOG) || rc=1; \
	$(MAKE) test-integration 2>&1 | tee -a $(TEST_LOG) || rc=1; \
	$(MAKE) test-integration TEST_STACK=test-monitoring FILES=$(MONITORING_FILE) 2>&1 | tee -a $(TEST_LOG) || rc=1; \
	$(BUN) scripts/test-summary.ts $(TEST_LOG) || rc=1; \
	exit $$rc

.PHONY: test-unit
test-unit: deps ## Unit tests only (no cluster)
	$(BUN) test --timeout 30000 tests/unit

# Each file starts on a healthy cluster: dev-up is a no-op when it is, a repair when a file left it hurt.
.PHONY: golden
golden: deps ## Rewrite the unit tests' golden files from the current code (tests never write them); review the diff, commit
	$(BUN) tests/update-golden.ts

.PHONY: settings-docs
settings-docs: deps ## Rewrite envs/README.md, clients/README.md, clusters/README.md from the settings tables
	$(BUN) scripts/settings-docs.ts

.PHONY: test-integration
test-integration: deps ## Start the test stack, run tests/integration against it file by file, tear it down
	@STACK=$(TEST_STACK) $(BUN) scripts/clean.ts --yes >/dev/null
	@rc=0; failed=""; \
	STACK=$(TEST_STACK) $(BUN) scripts/dev-up.ts || { rc=1; failed="dev-up"; STACK=$(TEST_STACK) $(BUN) scripts/logs.ts --lines 40 || true; }; \
	for f in $(if $(FILES),$(FILES),$(INTEGRATION_FILES)); do \
	  [ "$$failed" != "dev-up" ] || break; \
	  STACK=$(TEST_STACK) $(BUN) scripts/dev-up.ts --json --no-install >/dev/null || { echo "test stack could not be healed before $$f"; rc=1; failed="$$failed heal:$$f"; break; }; \
	  STACK=$(TEST_STACK) $(BUN) test --timeout $(TEST_TIMEOUT_MS) $$f || { rc=1; failed="$$failed $$f"; }; \
	done; \
	STACK=$(TEST_STACK) $(BUN) scripts/clean.ts --yes || true; \
	if [ $$rc -eq 0 ]; then echo "integration: all files passed"; else echo "integration: FAILED:$$failed"; fi; \
	exit $$rc

.PHONY: test-security
test-security: deps ## Every attack (tests/integration/attack-*.test.ts) against the test stack; prints `N attacks tried, 0 succeeded`
	@mkdir -p .state && : > .state/test-security.log
	@rc=0; \
	$(MAKE) test-integration FILES="$(ATTACK_FILES)" 2>&1 | tee -a .state/test-security.log || rc=1; \
	$(BUN) scripts/test-summary.ts .state/test-security.log --attacks || rc=1; \
	exit $$rc

.PHONY: test-failover
test-failover: deps ## Failover drill under write load; exit 1 on a lost write or missed RTO (SCENARIO=kill-primary|all ROUNDS=1 RTO_BUDGET=s)
	$(BUN) scripts/test-failover.ts $(if $(SCENARIO),--scenario $(SCENARIO),) $(if $(ROUNDS),--rounds $(ROUNDS),) $(if $(RTO_BUDGET),--rto-budget $(RTO_BUDGET),) $(ARGS)

.PHONY: mutation
mutation: deps ## Mutation run (StrykerJS) over the modules that hold guards; not in CI (minutes) [MODULE=<path part>] [CONCURRENCY=2]
	$(BUN) scripts/mutation.ts $(if $(MODULE),--module $(MODULE),) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY),) $(ARGS)

.PHONY: switchover
switchover: deps ## Planned switchover with clients held in pgbouncer (PAUSE/RESUME): [TO=pg2]; 0 failed statements
	$(BUN) scripts/switchover.ts $(if $(filter command line,$(origin TO)),--to $(TO),) $(ARGS)

.PHONY: restart-member
restart-member: deps ## Restart one member (the leader is switched away first, inside PAUSE/RESUME): MEMBER=pg1
	@test -n "$(MEMBER)" || { echo "error [MISSING_MEMBER]: MEMBER is required, e.g. make restart-member MEMBER=pg1"; exit 1; }
	$(BUN) scripts/switchover.ts --restart-member $(MEMBER) $(ARGS)

.PHONY: typecheck
typecheck: deps ## TypeScript type check
	node_modules/.bin/tsc -p .

# --- benchmarks (print figures; never gate CI) ---------------------------------
.PHONY: bench-backup
bench-backup: deps ## Backup/restore throughput vs raw pg_dump/pg_restore on >= 1 GB (STACK=<yours>)
	$(BUN) bench/backup.ts $(ARGS)

.PHONY: bench-dev-up
bench-dev-up: deps ## Cold start, warm restart and no-op re-run times of the stack
	$(BUN) bench/dev-up.ts

.PHONY: bench-pool
bench-pool: deps ## pgbouncer vs HAProxy directly: throughput, a switchover under pgbench (failed, stall), idle clients (STACK must be up)
	$(BUN) bench/pool.ts $(ARGS)

.PHONY: bench-monitoring
bench-monitoring: deps ## Monitoring's CPU and memory and the members' log growth on the idle running stack (MONITORING=true)
	$(BUN) bench/monitoring.ts $(ARGS)

.PHONY: bench-failover
bench-failover: deps ## Median RTO per scenario over ROUNDS=5 vs the budget and Patroni's own promotion time (STACK must be up)
	$(BUN) bench/failover.ts $(if $(ROUNDS),--rounds $(ROUNDS),) $(if $(SCENARIO),--scenario $(SCENARIO),) $(ARGS)

.PHONY: bench-cluster
bench-cluster: deps ## ROUNDS=5 of partition-leader and kill-host on the namespace lab (built and removed here; root): write gap, lost writes, two writable primaries, rejoin
	$(BUN) bench/cluster.ts $(if $(ROUNDS),--rounds $(ROUNDS),) $(ARGS)

.PHONY: bench-new-app
bench-new-app: deps ## Onboarding time of an app vs the raw psql statements (STACK must be up)
	$(BUN) bench/new-app.ts $(ARGS)

.PHONY: bench-deploy-client
bench-deploy-client: deps ## PLAN time and full deploy / no-op re-deploy time to this host (own stack on 127.0.7.x) vs bare render + nginx -t
	$(BUN) bench/deploy-client.ts $(ARGS)

.PHONY: bench-migrate-saas
bench-migrate-saas: deps ## Migration throughput (incl. verification) vs raw pg_dump | psql on GB=1 of data (STACK must be up)
	$(BUN) bench/migrate-saas.ts $(if $(GB),--gb $(GB),) $(ARGS)
