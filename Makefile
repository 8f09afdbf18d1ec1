# Kompox — the two commands a newcomer runs are `make demo` and `make test` (see README.md).
SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help
help: ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build every Kompox binary.
	$(CARGO) build --workspace --bins

.PHONY: tools
tools: ## Build the pinned upstream control-plane binaries into the cache (skipped when present).
	hack/build-tools.sh

.PHONY: images
images: ## With KOMPOX_REAL_NODE=1: build the real node's images (pause, busybox, Kompox's own; hack/images.sh).
	@if [ "$${KOMPOX_REAL_NODE:-0}" = 1 ]; then hack/images.sh build; fi

.PHONY: up
up: tools images ## Start the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok; KOMPOX_REAL_NODE=1: a real node).
	hack/cluster.sh up

.PHONY: down
down: ## Stop the local control plane (and the second one, KOMPOX_CLUSTER=b, that the migrate tests start).
	KOMPOX_CLUSTER=b hack/cluster.sh down
	hack/cluster.sh down

.PHONY: demo
demo: up ## Build, bring the local control plane up and show Kompox at work (KOMPOX_REAL_NODE=1: as Pods on the real node, Gitea through Traefik).
	$(CARGO) build -p kubectl-kompox -p kompox-apiserver -p kompox-webhook -p kompox-controller
	hack/demo.sh

.PHONY: fmt-check
fmt-check:
	$(CARGO) fmt --all -- --check

.PHONY: lint
lint: fmt-check ## cargo fmt --check and clippy -D warnings.
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: soak
soak: ## Never-panic soak, outside CI: 100,000 cases each (KOMPOX_SOAK_CASES) of .env texts, AdmissionReviews and compose projects (docs/performance.md).
	$(CARGO) test -p kompox-core --lib dotenv_soak -- --ignored --nocapture
	$(CARGO) test -p kompox-webhook --lib -- --ignored --nocapture corrupted_reviews_soak review_decode_soak
	$(CARGO) test -p kompox-core --release --lib generated_projects_soak -- --ignored --nocapture

.PHONY: test
# KOMPOX_REQUIRE_ORACLE: `up` built the compose oracle (hack/build-tools.sh), so the differential
# test cli/tests/compose_oracle.rs must find it rather than skip.
test: lint up ## Format and lint checks, unit tests, and end-to-end tests against the local control plane.
	KOMPOX_REQUIRE_ORACLE=1 $(CARGO) test --workspace --no-fail-fast
