# usine — `make test` installs what the tests need and runs every test.
GO ?= go

.PHONY: test vet build bench

# PostgreSQL tests run against a real throw-away server that
# scripts/with-postgres installs (Debian's package) and starts on loopback.
test: vet
	scripts/with-postgres $(GO) test -count=1 ./...

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

build:
	$(GO) build -o bin/usine ./cmd/usine

# The figures in docs/PERFORMANCE.md.
bench:
	$(GO) test ./internal/sched -run '^$$' -bench 'PlanGigafactory|PlanScale' -benchtime 10x -count 5 -cpu 1
