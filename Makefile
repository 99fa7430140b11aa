# The two commands a new user runs. Both install what they need first (scripts/setup.sh).
.PHONY: demo test lint

demo: ## run the main job end to end on this machine
	scripts/demo.sh

test: ## run every test
	scripts/test.sh

lint: ## formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --release --all-targets --locked -- -D warnings
