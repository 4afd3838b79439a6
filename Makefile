# usine — `make test` installs what the tests need and runs every test.
GO ?= go

.PHONY: test vet fuzz build bench

# PostgreSQL tests run against a real throw-away server that
# scripts/with-postgres installs (Debian's package) and starts on loopback.
test: vet
	scripts/with-postgres $(GO) test -count=1 ./...
	$(MAKE) fuzz

# The request decoders, fuzzed for a bounded time beyond their checked-in
# seeds (which every go test runs). FUZZTIME=1000000x make fuzz to dig
# deeper. The budget is a count of inputs, not a duration: Go 1.26's fuzz
# coordinator can fail a duration-bounded run at its deadline with no
# crasher ("context deadline exceeded", golang/go#75804, fixed in 1.27).
FUZZTIME ?= 20000x
fuzz:
	$(GO) test ./internal/server -run '^$$' -fuzz '^FuzzDecodeSubmit$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/server -run '^$$' -fuzz '^FuzzParseArray$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/slurm -run '^$$' -fuzz '^FuzzParseBatch$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/slurm/hostlist -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

build:
	$(GO) build -o bin/usine ./cmd/usine

# The figures in docs/PERFORMANCE.md.
bench:
	$(GO) test ./internal/sched -run '^$$' -bench 'PlanGigafactory|PlanScale' -benchtime 10x -count 5 -cpu 1
