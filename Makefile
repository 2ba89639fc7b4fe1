# The two commands: `make run` and `make test`. Both work from a clean clone.
SHELL := /bin/bash
BIN   := bin/cardata
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cardata?sslmode=disable
export LISTEN_ADDR  ?= 127.0.0.1:8080
# The development identity provider (staff on DEV_IDP_ADDR, vehicle owners on
# the next port) for `make run`; DEV_IDP=0 when STAFF_OIDC_* or CUSTOMER_OIDC_*
# name a real one.
DEV_IDP      ?= 1
DEV_IDP_ADDR ?= 127.0.0.1:8081
# Each parallel test holds its own database and pools, some a server or a
# Chromium: as many packages and tests at once as there are cores, at most 4,
# keeps a small machine's CPU and PostgreSQL's 100 connections ahead of them.
TEST_PARALLEL ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
GOTEST_FLAGS ?= -count=1 -timeout 25m -p $(TEST_PARALLEL) -parallel $(TEST_PARALLEL)

.PHONY: run test test-stress soak build postgres chromium vet bench bench-ingest bench-api bench-invoice bench-ledger pkggraph axe clean

## run: start Postgres if needed, create + migrate the database, load demo data, serve
run: postgres build
	@$(BIN) migrate
	@$(BIN) demo
	@echo
	@echo "  CarData Partner Office: http://$(LISTEN_ADDR)/admin"
	@echo "  Staff logins (password cardata-demo):"
	@echo "    manager@demo.local  manager2@demo.local  finance@demo.local  finance2@demo.local"
	@echo "    support@demo.local  lead@demo.local  admin@demo.local  auditor@demo.local"
	@echo "    (a credit note is drafted by one finance user and issued by the other)"
	@echo "    admin@demo.local needs a second factor (STAFF_TOTP_REQUIRED_ROLES=admin): at its first sign-in it sets up"
	@echo "    an authenticator app (scan the QR code or type the key shown), then each sign-in asks for the app's code"
	@echo "  Provider portal: http://$(LISTEN_ADDR)/portal  (admin@demo-insurer.example)"
	@echo "  Customer pages:  http://$(LISTEN_ADDR)/my      (customer1@demo.local, anna@demo.example)"
	@if [ "$(DEV_IDP)" = 1 ]; then \
		a=$(DEV_IDP_ADDR); port=$${a##*:}; host=$${a%:*}; \
		echo "  Development identity provider (not for production; demo identities, no passwords):"; \
		echo "    staff:     http://$(LISTEN_ADDR)/admin/login -> \"Sign in with your company account\"   (identities: http://$(DEV_IDP_ADDR)/)"; \
		echo "    customers: http://$(LISTEN_ADDR)/my/login    -> \"Sign in with your BMW or MINI account\" (identities: http://$$host:$$((port+1))/)"; \
	fi
	@echo "  Stop with Ctrl-C."
	@echo
	@DEV_IDP=$(DEV_IDP) DEV_IDP_ADDR=$(DEV_IDP_ADDR) exec $(BIN) serve

## test: every test, including database and headless-browser tests
test: postgres chromium vet
	go test $(GOTEST_FLAGS) ./...

## test-stress (not in CI): the whole suite STRESS_COUNT times in shuffled order, then the
## packages where goroutines meet under -race; a flake shows here before it shows in CI
STRESS_COUNT ?= 3
RACE_PKGS ?= ./jobs/... ./billing/... ./app/ingest/... ./app/providerapi/... ./app/web/... ./onboarding/webhooks/... ./policies/...
RACE_APP_TESTS ?= Shutdown|TwoInstances|Simulate|Replicas|RateLimit|Pushes|Concurrent|Starve|TestIngest
test-stress: postgres chromium vet
	go test -count=$(STRESS_COUNT) -shuffle=on -timeout $$((25 * $(STRESS_COUNT)))m -p $(TEST_PARALLEL) -parallel $(TEST_PARALLEL) ./...
	go test -race -count=1 -shuffle=on -timeout 60m -p $(TEST_PARALLEL) $(RACE_PKGS)
	go test -race -count=1 -shuffle=on -timeout 60m -run '$(RACE_APP_TESTS)' ./app

## soak (not in CI; bounded): three `cardata serve` replicas behind a load balancer on a fresh database,
## steady ingest and provider API load, faults injected (kill -9, PostgreSQL restart, a hanging webhook
## receiver, invoicing mid-traffic, secret rotation, revocations), invariants checked; exit 1 on a breach.
## SOAK_PG=private runs on a throwaway cluster instead of restarting the shared server.
SOAK_DURATION ?= 10m
SOAK_PG ?= shared
soak: postgres build
	go build -o bin/soak ./app/bench/soak
	bin/soak -binary $(BIN) -duration $(SOAK_DURATION) -pg $(SOAK_PG)

build:
	go build -o $(BIN) ./app/cmd/cardata

vet:
	go vet ./...

postgres:
	@./.ci/ensure-postgres

chromium:
	@./.ci/ensure-chromium

## bench: the benchmarks behind docs/PERFORMANCE.md
bench: postgres
	go test -run '^$$' -bench . -benchmem -count=1 ./...

## bench-ingest: 100,000 vehicles, HTTP load from this process against `cardata serve`, vs. the database ceiling
bench-ingest: postgres build
	$(BIN) bench ingest

## bench-api: provider API reads (OAuth, consent decision, durable ledger) from a separate process vs. the database ceiling
bench-api: postgres build
	go run ./app/bench/api -binary $(BIN) $(BENCH_API_FLAGS)

## bench-invoice: the monthly invoice run over 10 million records of 1,000 providers vs. the bare SQL aggregate
BILLING_BENCH_RECORDS ?= 10000000
BILLING_BENCH_PROVIDERS ?= 1000
bench-invoice: postgres
	BILLING_BENCH_RECORDS=$(BILLING_BENCH_RECORDS) BILLING_BENCH_PROVIDERS=$(BILLING_BENCH_PROVIDERS) \
		go test ./billing -run '^$$' -bench InvoiceRun -benchtime 1x -timeout 60m

## bench-ledger: grouped ledger commits vs. one commit per record
bench-ledger: postgres
	go test ./billing -run '^$$' -bench LedgerWriter -benchtime 3000x -count 2

## pkggraph: redraw README.md's package graph from the code's imports (checked by go test ./app/cmd/pkggraph)
pkggraph:
	go run ./app/cmd/pkggraph -w README.md

## axe: refresh the vendored axe-core (MPL-2.0) that the crawl's accessibility check runs
## (app/e2e/testdata/axe.min.js, licence header kept) from the npm registry; the tests need no network
AXE_VERSION ?= 4.14.1
axe:
	d=$$(mktemp -d) && (cd $$d && npm pack axe-core@$(AXE_VERSION) >/dev/null && tar xzf axe-core-$(AXE_VERSION).tgz) && \
		cp $$d/package/axe.min.js app/e2e/testdata/axe.min.js && cp $$d/package/LICENSE app/e2e/testdata/axe-core.LICENSE && rm -rf $$d

clean:
	rm -rf bin
